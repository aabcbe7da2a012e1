"""The sampled product on a CPU as a compiled loop (numba), called from XLA through its FFI.

    ΔW[i,k] = Σ_d U[i,d] · V[idx[i,k], d]

the SDDMM of :mod:`olfacto.model.chunked` (kernel ``numba``). XLA:CPU's gather-contract
(``chunked.sddmm_gather``) reaches 0.47–0.52 ns per synapse and inner element when the gathered operand
lies in DRAM (N_pre = 10⁶, d = 100) and 0.23 ns when it fits the cache; this loop — each row's U[i] held
while four gathered rows of V are contracted at once — 0.31–0.34 and 0.05 (docs/benchmarks.md §24). A
rectified cortex has no factored form, so at the mouse scale this product is almost all of its learning.

How it is called: the loop is an ``@njit(parallel=True)`` function over rows; a ctypes function with the
C signature of an XLA FFI handler (``XLA_FFI_Error* (XLA_FFI_CallFrame*)``, ``xla/ffi/api/c_api.h``) reads
the buffers' addresses and shapes from the call frame and passes them to the loop without a copy
(``jax.pure_callback`` copies its operands: 0.07 ns per element, most of what the loop saves). The handler
is registered once per process as the CPU target ``olfacto_sddmm``; :func:`sddmm` is an ordinary JAX
function (jit, scan, vmap — a batch runs its members one after another). CPU only: nothing is registered
for an accelerator, and a network sharded over devices keeps XLA's gather (an FFI call cannot be
partitioned; XLA would gather its operands to every device).

The sum over d runs in another order than XLA's (four partial sums, ``fastmath``): equal to the gather
kernel within float32 round-off, not bit for bit. Calls are serialised by a lock: two directions' products
may run on two of XLA's threads at once, and each loop already uses every core.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TARGET = "olfacto_sddmm"
_LOCK = threading.Lock()

# -- the XLA FFI call frame (xla/ffi/api/c_api.h, API 0.x): only the fields read here ----------------------

_P = ctypes.c_void_p
_EXTENSION_METADATA = 1  # XLA_FFI_Extension_Metadata: XLA asks the handler for its API version
_EXECUTE = 3  # XLA_FFI_ExecutionStage_EXECUTE
_DTYPES = {4: np.dtype(np.int32), 11: np.dtype(np.float32)}  # XLA_FFI_DataType S32, F32
_API_VERSION = (0, 1)  # the oldest 0.x API this frame layout matches


class _ExtensionBase(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("type", ctypes.c_int), ("next", _P)]


class _ApiVersion(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", _P), ("major_version", ctypes.c_int),
                ("minor_version", ctypes.c_int)]


class _Metadata(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("api_version", _ApiVersion), ("traits", ctypes.c_uint32)]


class _MetadataExtension(ctypes.Structure):
    _fields_ = [("extension_base", _ExtensionBase), ("metadata", ctypes.POINTER(_Metadata))]


class _Buffer(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", _P), ("dtype", ctypes.c_int),
                ("data", _P), ("rank", ctypes.c_int64), ("dims", ctypes.POINTER(ctypes.c_int64))]


class _Buffers(ctypes.Structure):  # XLA_FFI_Args and XLA_FFI_Rets share this layout
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", _P), ("size", ctypes.c_int64),
                ("types", _P), ("buffers", ctypes.POINTER(ctypes.POINTER(_Buffer)))]


class _CallFrame(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.POINTER(_ExtensionBase)),
                ("api", _P), ("ctx", _P), ("stage", ctypes.c_int), ("args", _Buffers), ("rets", _Buffers)]


def _array(buffer: Any) -> np.ndarray:
    """A NumPy view (no copy) of an FFI buffer (row-major, as :func:`jax.ffi.ffi_call` lays it out)."""
    b = buffer.contents
    shape = tuple(int(b.dims[i]) for i in range(b.rank))
    dtype = _DTYPES[b.dtype]
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return np.empty(shape, dtype)
    raw = (ctypes.c_char * (size * dtype.itemsize)).from_address(b.data)
    return np.frombuffer(raw, dtype).reshape(shape)


# -- the loop --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _loop() -> Any:
    """The compiled loop (numba imported and the function compiled on first use; cached on disk by numba)."""
    from numba import njit, prange

    @njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def sddmm_rows(u, v, idx, out):  # pragma: no cover - compiled; tested through sddmm
        n, k = idx.shape
        d = u.shape[1]
        last = v.shape[0] - 1
        for i in prange(n):
            ui = u[i]
            c = 0
            while c + 3 < k:  # four gathered rows at once: their loads overlap
                v0 = v[min(max(idx[i, c], 0), last)]
                v1 = v[min(max(idx[i, c + 1], 0), last)]
                v2 = v[min(max(idx[i, c + 2], 0), last)]
                v3 = v[min(max(idx[i, c + 3], 0), last)]
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                for s in range(d):
                    us = ui[s]
                    a0 += us * v0[s]
                    a1 += us * v1[s]
                    a2 += us * v2[s]
                    a3 += us * v3[s]
                out[i, c] = a0
                out[i, c + 1] = a1
                out[i, c + 2] = a2
                out[i, c + 3] = a3
                c += 4
            while c < k:
                vc = v[min(max(idx[i, c], 0), last)]
                a = np.float32(0.0)
                for s in range(d):
                    a += ui[s] * vc[s]
                out[i, c] = a
                c += 1

    return sddmm_rows


def _handle(frame_address: int) -> None:
    """The FFI handler: answers XLA's metadata query, else runs the loop on the frame's buffers."""
    frame = ctypes.cast(frame_address, ctypes.POINTER(_CallFrame)).contents
    if frame.extension_start and frame.extension_start.contents.type == _EXTENSION_METADATA:
        meta = ctypes.cast(frame.extension_start, ctypes.POINTER(_MetadataExtension)).contents.metadata.contents
        meta.api_version.major_version, meta.api_version.minor_version = _API_VERSION
        meta.traits = 0
        return None
    if frame.stage != _EXECUTE:
        return None
    u, v, idx = (_array(frame.args.buffers[i]) for i in range(3))
    out = _array(frame.rets.buffers[0])
    if out.size and v.shape[0]:
        with _LOCK:
            _loop()(u, v, idx, out)
    elif out.size:
        out[...] = 0.0
    return None


_HANDLER = ctypes.CFUNCTYPE(_P, _P)(_handle)  # kept alive for the process: XLA holds its address


@lru_cache(maxsize=None)
def available() -> bool:
    """Whether the kernel can run here: numba importable and the target registered with XLA:CPU (once)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; a platform without its wheels
        return False
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(_HANDLER), platform="cpu")
    return True


def sddmm(U: jax.Array, V: jax.Array, idx: jax.Array) -> jax.Array:
    """ΔW[i,k] = U[i] · V[idx[i,k]] (float32; ``idx`` int32, every entry a row of V) by the compiled loop, on
    the CPU backend. Equal to :func:`olfacto.model.chunked.sddmm_gather` within float32 round-off."""
    if not available():  # pragma: no cover
        raise RuntimeError("the numba kernel needs numba (pip install numba)")
    if U.shape[1] != V.shape[1] or U.shape[0] != idx.shape[0]:
        raise ValueError(f"sddmm: U {U.shape}, V {V.shape} and idx {idx.shape} do not match")
    call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct(idx.shape, jnp.float32), vmap_method="sequential")
    return call(U.astype(jnp.float32), V.astype(jnp.float32), idx.astype(jnp.int32))
