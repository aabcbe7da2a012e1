"""Loops of the learning and of the rewiring events on a CPU, compiled (numba) and called from XLA through its FFI.

**The sampled product** (:func:`sddmm`, the SDDMM of :mod:`olfacto.model.chunked`, kernel ``numba``)::

    ΔW[i,k] = Σ_d U[i,d] · V[idx[i,k], d]

XLA:CPU's gather-contract (``chunked.sddmm_gather``) reaches 0.47–0.52 ns per synapse and inner element when
the gathered operand lies in DRAM (N_pre = 10⁶, d = 100) and 0.23 ns when it fits the cache; this loop — each
row's U[i] held while four gathered rows of V are contracted at once — 0.31–0.34 and 0.05 (docs/benchmarks.md
§24). A rectified cortex has no factored form, so at the mouse scale this product is almost all of its
learning.

**The sparse product** (:func:`spmm`: ``out[i] = Σ_k W[i,k] V[idx[i,k]]``, (W ⊙ C) V): four gathered rows of V
added into the row's sums at once, slot after slot as :func:`olfacto.model.sparse.matmat`'s gather kernel adds
them. The gradient rule's ŷ over the interval and V = (W ⊙ C) J_pre take it
(:func:`olfacto.model.sparse.project`): 1.7× XLA's gather at d = 100, 5× at d = 20 (docs/benchmarks.md §26).
Given the mask it also returns Σ_k C[i,k] V[idx[i,k]]² from the same gathered rows: a record of rewired masks
needs ŷ and q of the probes (:func:`olfacto.model.sparse.project_squares`, docs/benchmarks.md §28).

**Per-breath SGD** (:func:`sgd_block`, the ``sgd`` rule with optax's plain ``sgd``): a block of n updates of B
breaths each, update by update as :func:`olfacto.model.rules.sgd` takes them::

    ŷ_b,i = Σ_k W[i,k] y_pre,b[idx[i,k]],   W[i,k] ← W[i,k] + Σ_b (η/B)(y_post,b[i] − ŷ_b,i) y_pre,b[idx[i,k]]

at the valid slots. A row's update needs only its own weights, so the loop runs row by row (rows in parallel)
through all the block's breaths, the row's K weights and gathered rates staying in the L1 cache, where XLA's
scan takes breath after breath over all rows: two passes over W and a gather of every slot per breath.

**A rewiring event's choices** (:func:`regrowth`: per row the r_max smallest |W| and the best valid candidates,
64 rows at once, one per SIMD lane, by selects — a branch per slot mispredicts; :func:`rewire`: the same loop
writing the regrown synapses into the donated state in place) and **CHT's sampled paths**
(:func:`cht_paths`: 64 rows' paths advanced step by step, each step's random reads prefetched 32 ahead so that
many are in flight): integer and order work, the same results as XLA's path to the bit (docs/benchmarks.md §25).

How they are called: each loop is an ``@njit(parallel=True)`` function over rows; a ctypes function with the
C signature of an XLA FFI handler (``XLA_FFI_Error* (XLA_FFI_CallFrame*)``, ``xla/ffi/api/c_api.h``) reads
the buffers' addresses and shapes from the call frame and passes them to the loop without a copy
(``jax.pure_callback`` copies its operands: 0.07 ns per element, most of what the loop saves). The handlers
are registered once per process as CPU targets (:data:`TARGETS`); :func:`sddmm`, :func:`sgd_block`,
:func:`spmm`, :func:`regrowth` and :func:`cht_paths` are ordinary JAX functions (jit, scan, vmap — a batch runs
its members one after another). CPU only: nothing is registered for an accelerator, and a network sharded over
devices keeps XLA's kernels (an FFI call cannot be partitioned; XLA would gather its operands to every device).

The sums of the two learning loops and of :func:`spmm` run in another order than XLA's or round otherwise (partial
sums, ``fastmath``, fused multiply-adds): equal to XLA's paths within float32 round-off, not bit for bit. Loops
called at once (two batches run at once in two threads) share the cores (:func:`_run_shared`).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import threading
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TARGETS = {"sddmm": "olfacto_sddmm", "spmm": "olfacto_spmm", "spmm_squares": "olfacto_spmm_squares",
           "sgd": "olfacto_sgd", "rewire": "olfacto_rewire", "rewire_write": "olfacto_rewire_write",
           "cht": "olfacto_cht"}
_LOCK = threading.Lock()

# -- the XLA FFI call frame (xla/ffi/api/c_api.h, API 0.x): only the fields read here ----------------------

_P = ctypes.c_void_p
_EXTENSION_METADATA = 1  # XLA_FFI_Extension_Metadata: XLA asks the handler for its API version
_EXECUTE = 3  # XLA_FFI_ExecutionStage_EXECUTE
_DTYPES = {1: np.dtype(np.bool_), 4: np.dtype(np.int32), 11: np.dtype(np.float32)}  # PRED, S32, F32
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
def _loops() -> dict[str, Any]:
    """The compiled loops (numba imported and each function compiled on first use; cached on disk by numba).

    The helpers the loops call (``prefetch``, ``mix32``, ``through``) are module globals, not cells of a closure:
    numba keys its disk cache on the pickled closure cells, and a pickled dispatcher or intrinsic carries a
    fresh identifier in every process, so a loop capturing one missed the cache and compiled again in every
    process (2–3 s each) while its index file grew by an entry."""
    global prefetch, mix32, through
    from numba import njit, prange

    @njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def sddmm_rows(u, v, idx, out, threads):  # pragma: no cover - compiled; tested through sddmm (threads: unused)
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

    @njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def sgd_rows(w, idx, valid, y_pre, y_post, lr, out,
                 threads):  # pragma: no cover - compiled; tested through sgd_block (threads: unused)
        n, k = idx.shape
        n_updates, batch = y_pre.shape[0], y_pre.shape[1]
        last = y_pre.shape[2] - 1
        rate = lr[0] / np.float32(batch)
        for i in prange(n):
            wi, ii, vi = out[i], idx[i], valid[i]
            for c in range(k):
                wi[c] = w[i, c]
            g = np.empty((batch, k), np.float32)  # the gathered rates, read again by the update
            e = np.empty(batch, np.float32)
            for u in range(n_updates):
                for b in range(batch):
                    yb, gb = y_pre[u, b], g[b]
                    a0 = np.float32(0.0)  # four partial sums of ŷ: a sum's latency per slot otherwise
                    a1 = np.float32(0.0)
                    a2 = np.float32(0.0)
                    a3 = np.float32(0.0)
                    c = 0
                    while c + 3 < k:
                        g0 = yb[min(max(ii[c], 0), last)]
                        g1 = yb[min(max(ii[c + 1], 0), last)]
                        g2 = yb[min(max(ii[c + 2], 0), last)]
                        g3 = yb[min(max(ii[c + 3], 0), last)]
                        gb[c] = g0
                        gb[c + 1] = g1
                        gb[c + 2] = g2
                        gb[c + 3] = g3
                        a0 += wi[c] * g0
                        a1 += wi[c + 1] * g1
                        a2 += wi[c + 2] * g2
                        a3 += wi[c + 3] * g3
                        c += 4
                    while c < k:
                        g0 = yb[min(max(ii[c], 0), last)]
                        gb[c] = g0
                        a0 += wi[c] * g0
                        c += 1
                    e[b] = rate * (y_post[u, b, i] - ((a0 + a1) + (a2 + a3)))
                for b in range(batch):
                    eb, gb = e[b], g[b]
                    for c in range(k):
                        wi[c] += eb * gb[c] if vi[c] else np.float32(0.0)

    from llvmlite import ir
    from numba import types
    from numba.core.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, i, j):  # LLVM's prefetch (a read, into every cache level) of arr[i, j] (2-D)
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            offset = builder.add(builder.mul(args[1], builder.extract_value(ary.strides, 0)),
                                 builder.mul(args[2], builder.extract_value(ary.strides, 1)))
            ptr = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [offset])
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type] + [ir.IntType(32)] * 3)
            fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=fnty)
            builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 3),
                              ir.Constant(ir.IntType(32), 1)])
            return context.get_dummy_value()
        return types.void(arr, i, j), codegen

    def spmm_loop(squares):  # one definition of both loops, ``squares`` a constant of each compiled loop
        @njit(parallel=True, fastmath={"contract"}, nogil=True, cache=True)
        def rows(w, idx, valid, v, out, sq, threads):  # pragma: no cover - compiled; tested through spmm
            n, k = idx.shape
            d = v.shape[1]
            last = v.shape[0] - 1
            flat = idx.reshape(-1)
            for i in prange(n):
                oi = out[i]
                for s in range(d):
                    oi[s] = np.float32(0.0)
                if squares:
                    qi = sq[i]
                    for s in range(d):
                        qi[s] = np.float32(0.0)
                c = 0
                while c + 3 < k:  # four gathered rows at once (their loads overlap), still added slot after slot
                    if squares:  # the next four rows' lines requested now: with the squares the loop no longer
                        # keeps as many reads in flight by itself (130 → 112 ms a direction; the plain loop: no gain)
                        for t in range(4):
                            f = i * k + c + 4 + t
                            if f < n * k:
                                j = min(max(flat[f], 0), last)
                                for s in range(0, d, 16):
                                    prefetch(v, j, s)
                    w0, w1, w2, w3 = w[i, c], w[i, c + 1], w[i, c + 2], w[i, c + 3]
                    v0 = v[min(max(idx[i, c], 0), last)]
                    v1 = v[min(max(idx[i, c + 1], 0), last)]
                    v2 = v[min(max(idx[i, c + 2], 0), last)]
                    v3 = v[min(max(idx[i, c + 3], 0), last)]
                    if squares:  # C as exact 0/1 factors, so the squares' sums round as XLA's product's do
                        m0, m1 = np.float32(valid[i, c]), np.float32(valid[i, c + 1])
                        m2, m3 = np.float32(valid[i, c + 2]), np.float32(valid[i, c + 3])
                    else:
                        m0 = m1 = m2 = m3 = np.float32(0.0)
                    for s in range(d):  # the squares in the same loop (a loop of their own after it: 121 → 158 ms)
                        a = oi[s] + w0 * v0[s]
                        a = a + w1 * v1[s]
                        a = a + w2 * v2[s]
                        oi[s] = a + w3 * v3[s]
                        if squares:
                            b = qi[s] + m0 * (v0[s] * v0[s])
                            b = b + m1 * (v1[s] * v1[s])
                            b = b + m2 * (v2[s] * v2[s])
                            qi[s] = b + m3 * (v3[s] * v3[s])
                    c += 4
                while c < k:  # slot after slot, as XLA's scan adds them (appended zero slots: the same bits)
                    wc = w[i, c]
                    vc = v[min(max(idx[i, c], 0), last)]
                    for s in range(d):
                        oi[s] += wc * vc[s]
                    if squares:
                        mc = np.float32(valid[i, c])
                        for s in range(d):
                            qi[s] += mc * (vc[s] * vc[s])
                    c += 1

        return rows

    # a flag read at run time inside the loop took it 144 → 237 ms with the squares (docs/benchmarks.md §28)
    spmm_plain, spmm_squares_rows = spmm_loop(False), spmm_loop(True)
    no_mask, no_squares = np.zeros((0, 0), np.bool_), np.zeros((0, 0), np.float32)

    def spmm_rows(w, idx, v, out, threads):  # pragma: no cover - compiled; tested through spmm
        spmm_plain(w, idx, no_mask, v, out, no_squares, threads)

    def rewire_loop(write):  # one definition of both loops, ``write`` a constant of each compiled loop
        @njit(parallel=True, nogil=True, cache=True)
        def event_rows(weights, idx, valid, priority, candidates, score, r_i, count, shape, target, partner, w_out,
                       idx_out, origin_out, threads):  # pragma: no cover - compiled; tested through regrowth and rewire
            n, k = idx.shape
            r_max, n_pre, size = shape[0], shape[1], shape[2]
            windows, scored, by_weight = shape[3] != 0, shape[4] != 0, shape[5] != 0
            inf = np.float32(np.inf)
            lanes = 64  # rows whose smallest slots are found at once, one row per SIMD lane (no branch per slot)
            blocks = -(-n // lanes)
            parts = min(blocks, 4 * threads)  # scratch allocated once per part
            for p in prange(parts):  # blocks of rows in a few parts, each with its scratch allocated once
                vt = np.empty((k, lanes), np.float32)  # the block's priorities, slot-major
                sv = np.empty((r_max, lanes), np.float32)  # per lane the r_max smallest (priority, slot) so far
                ss = np.empty((r_max, lanes), np.int32)
                cv = np.empty(lanes, np.float32)
                cs = np.empty(lanes, np.int32)
                st = np.empty((size, lanes), np.float32)  # the block's scores, place-major
                bv = np.empty((r_max, lanes), np.float32)  # per lane the r_max best (score, place) so far, in order
                bp = np.empty((r_max, lanes), np.int32)
                nf = np.empty(lanes, np.int32)  # per lane the valid candidates found (at most r_max)
                bad = np.empty(size, np.bool_)
                for blk in range(p * blocks // parts, (p + 1) * blocks // parts):
                    i0 = blk * lanes
                    rows = min(lanes, n - i0)
                    # the block's widths: its rows' largest r_i and last valid slot. A run padded to more slots
                    # than it has (a sweep's batch over K) then ranks its own K and r, not the batch's: a row's
                    # r_i smallest are among its slots up to its last valid one, and no q ≥ r_i is read
                    r_blk, k_blk = 0, 0
                    for l in range(rows):
                        r_blk = max(r_blk, min(r_i[i0 + l], r_max))
                    for l in range(lanes):
                        for c in range(k):
                            v = inf
                            if l < rows and valid[i0 + l, c]:
                                k_blk = max(k_blk, c + 1)
                                v = abs(weights[i0 + l, c]) if by_weight else priority[i0 + l, c]
                                if np.isnan(v):  # a diverged run's NaN ranks last, as +inf
                                    v = inf
                            vt[c, l] = v
                    for q in range(r_max):
                        for l in range(lanes):
                            sv[q, l] = inf
                            ss[q, l] = k  # (inf, K): after every slot
                    for c in range(k_blk):  # insert slot c into every lane's sorted r_blk, by selects
                        for l in range(lanes):
                            cv[l] = vt[c, l]
                            cs[l] = c
                        for q in range(r_blk):
                            for l in range(lanes):
                                a, b, x, y = sv[q, l], ss[q, l], cv[l], cs[l]
                                less = (x < a) | ((x == a) & (y < b))
                                sv[q, l] = x if less else a
                                ss[q, l] = y if less else b
                                cv[l] = a if less else x
                                cs[l] = b if less else y
                    for l in range(rows):
                        i = i0 + l
                        limit = count[i]
                        for c in range(size):
                            bad[c] = c >= limit
                        if windows:  # a partner's place in the window o, o + 1, …: (j − o) mod n_pre
                            o = candidates[i, 0]
                            for c in range(k):
                                if valid[i, c]:
                                    off = idx[i, c] - o
                                    if off < 0:
                                        off += n_pre
                                    if 0 <= off < size:
                                        bad[off] = True
                        else:  # an arbitrary pool: a partner already, or an earlier candidate (compares, vectorised)
                            for c in range(size):
                                j = candidates[i, c]
                                hit = False
                                for s2 in range(k):
                                    hit |= (idx[i, s2] == j) & valid[i, s2]
                                for c2 in range(c):
                                    hit |= candidates[i, c2] == j
                                bad[c] = bad[c] | hit
                        found = 0
                        if scored:  # the row's lane of the block's scores: -inf where not a valid finite score
                            for c in range(size):
                                v = score[i, c]
                                st[c, l] = v if not bad[c] and np.isfinite(v) else -inf
                        else:  # the first valid ones in pool order
                            for c in range(size):
                                if found == r_blk:
                                    break
                                if not bad[c]:
                                    bp[found, l] = c
                                    found += 1
                            nf[l] = found
                    if scored:  # the r_blk best (score, place) of every lane — larger first, ties in pool order
                        for q in range(r_max):
                            for l in range(lanes):
                                bv[q, l] = -inf
                                bp[q, l] = size
                        for c in range(size):
                            for l in range(lanes):
                                cv[l] = st[c, l] if l < rows else -inf
                                cs[l] = c
                            for q in range(r_blk):
                                for l in range(lanes):
                                    a, b, x, y = bv[q, l], bp[q, l], cv[l], cs[l]
                                    more = (x > a) | ((x == a) & (y < b))
                                    bv[q, l] = x if more else a
                                    bp[q, l] = y if more else b
                                    cv[l] = a if more else x
                                    cs[l] = b if more else y
                        for l in range(rows):
                            found = 0
                            for q in range(r_max):
                                found += bv[q, l] > -inf
                            nf[l] = found
                    for l in range(rows):
                        i = i0 + l
                        take = min(r_i[i], nf[l])
                        for q in range(r_max):
                            if q < take:
                                target[i, q] = ss[q, l]
                                if windows:
                                    j = candidates[i, 0] + bp[q, l]
                                    j = j - n_pre if j >= n_pre else j
                                else:
                                    j = candidates[i, bp[q, l]]
                                if write:  # the regrown synapse, in place (its row's reads are done)
                                    t = ss[q, l]
                                    w_out[i, t] = np.float32(0.0)
                                    idx_out[i, t] = j
                                    origin_out[i, t] = False
                                else:
                                    partner[i, q] = j
                            else:
                                target[i, q] = k
                                if not write:
                                    partner[i, q] = 0

        return event_rows

    rewire_rows, rewire_write_rows = rewire_loop(False), rewire_loop(True)
    no_w, no_i, no_b = np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int32), np.zeros((0, 0), np.bool_)

    def rewire_pairs(weights, idx, valid, priority, candidates, score, r_i, count, shape, target, partner,
                     threads):  # pragma: no cover - compiled; tested through regrowth
        rewire_rows(weights, idx, valid, priority, candidates, score, r_i, count, shape, target, partner, no_w, no_i,
                    no_b, threads)

    def rewire_in_place(weights, idx, origin, valid, priority, candidates, score, r_i, count, shape, after, w_out,
                        idx_out, origin_out, target, threads):  # pragma: no cover - compiled; tested through rewire
        # the state arrays come as (1, rows, K) (see rewire); each output is its operand's buffer
        rewire_write_rows(weights[0], idx[0], valid, priority, candidates, score, r_i, count, shape, target, no_i,
                          w_out[0], idx_out[0], origin_out[0], threads)

    @njit(nogil=True, inline="always")
    def mix32(x):  # rewiring.mix32 on uint32 values held in 64 bits
        x = x ^ (x >> 16)
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x = x ^ (x >> 15)
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    @njit(nogil=True, inline="always")
    def through(bits, degree):  # rewiring.cht_candidates' uniform slot: ⌊u·K⌋ in float32, at most K − 1
        u = np.float32(np.int64(bits >> 8)) * np.float32(2.0 ** -24)  # via int64: a uint64 conversion branches
        kf = np.float32(degree)
        return int(min(np.floor(u * kf), max(kf - np.float32(1.0), np.float32(0.0))))

    @njit(parallel=True, nogil=True, cache=True)
    def cht_rows(fwd, deg_f, back, deg_b, seeds, count, ends, score,
                 threads):  # pragma: no cover - compiled; tested through cht_paths
        n, last_f, last_b = fwd.shape[0], fwd.shape[0] - 1, back.shape[0] - 1
        size = ends.shape[1]
        counters = np.empty((3, size), np.uint64)
        for step in range(3):
            for q in range(size):
                counters[step, q] = mix32(np.uint64(3 * q + step + 1))
        AHEAD = 32  # reads prefetched ahead (measured: 8 slower, 16 1.2×, 32 1.9×, 64 1.7× on a tight gather)
        lanes = 64  # rows whose paths advance step by step together: each step's random reads are independent
        blocks = -(-n // lanes)  # loads, in flight at once (a tight gather: 9 ns a read; one path's chain: 40)
        parts = min(blocks, 4 * threads)
        for p in prange(parts):
            node = np.empty(lanes * size, np.int64)
            slot = np.empty(lanes * size, np.int64)
            good = np.empty(lanes * size, np.bool_)
            seed = np.empty(lanes, np.uint64)
            e = np.empty(size, np.int32)
            ok = np.empty(size, np.int32)
            for blk in range(p * blocks // parts, (p + 1) * blocks // parts):
                i0 = blk * lanes
                rows = min(lanes, n - i0)
                for l in range(rows):  # u: a partner of i (indices clamped as XLA's gathers clamp them)
                    i = i0 + l
                    seed[l] = np.uint64(seeds[i]) & 0xFFFFFFFF  # the int32 view of the uint32 draw
                    for q in range(size):
                        t = l * size + q
                        node[t] = min(max(fwd[i, through(mix32(seed[l] ^ counters[0, q]), deg_f[i])], 0), last_b)
                        good[t] = deg_f[i] > 0 and q < count[i]
                for l in range(rows):  # v: a partner of u in the other direction
                    for q in range(size):
                        t = l * size + q
                        d = deg_b[node[t]]
                        good[t] = good[t] and d > 0
                        slot[t] = through(mix32(seed[l] ^ counters[1, q]), d)
                m = rows * size
                for t in range(m):
                    if t + AHEAD < m:  # the row AHEAD reads on: 2 × fewer ns a read (a tight gather 18 → 9 ms)
                        prefetch(back, node[t + AHEAD], slot[t + AHEAD])
                    node[t] = min(max(back[node[t], slot[t]], 0), last_f)
                for l in range(rows):  # j: a partner of v
                    for q in range(size):
                        t = l * size + q
                        d = deg_f[node[t]]
                        good[t] = good[t] and d > 0
                        slot[t] = through(mix32(seed[l] ^ counters[2, q]), d)
                for l in range(rows):
                    for q in range(size):
                        t = l * size + q
                        if t + AHEAD < m:
                            prefetch(fwd, node[t + AHEAD], slot[t + AHEAD])
                        ends[i0 + l, q] = fwd[node[t], slot[t]]
                for l in range(rows):  # a valid path's score: the row's valid paths that end where it does
                    i = i0 + l
                    for q in range(size):
                        e[q] = ends[i, q]
                        ok[q] = good[l * size + q]
                    for q in range(size):
                        same = 0
                        for q2 in range(size):  # branch-free: vectorised
                            same += (e[q2] == e[q]) * ok[q2]
                        score[i, q] = np.float32(same) if ok[q] else -np.inf

    return {"sddmm": sddmm_rows, "spmm": spmm_rows, "spmm_squares": spmm_squares_rows, "sgd": sgd_rows,
            "rewire": rewire_pairs, "rewire_write": rewire_in_place, "cht": cht_rows}


def _handler(kernel: str) -> Any:
    """The FFI handler of one loop: answers XLA's metadata query, else runs the loop on the frame's buffers
    (the operands, then the result)."""
    def handle(frame_address: int) -> None:
        frame = ctypes.cast(frame_address, ctypes.POINTER(_CallFrame)).contents
        if frame.extension_start and frame.extension_start.contents.type == _EXTENSION_METADATA:
            meta = ctypes.cast(frame.extension_start, ctypes.POINTER(_MetadataExtension)).contents.metadata.contents
            meta.api_version.major_version, meta.api_version.minor_version = _API_VERSION
            meta.traits = 0
            return None
        if frame.stage != _EXECUTE:
            return None
        args = [_array(frame.args.buffers[i]) for i in range(frame.args.size)]
        outs = [_array(frame.rets.buffers[i]) for i in range(frame.rets.size)]
        if outs[0].size:
            _run_shared(kernel, args, outs)
        return None

    return ctypes.CFUNCTYPE(_P, _P)(handle)


_ACTIVE = [0]  # loops running now, on any thread
_CALLED: set[str] = set()  # the loops this process has called
LOOP_NAMES = {"sddmm": "the learning's sampled product", "spmm": "the sparse product",
              "spmm_squares": "the sparse product with squares", "sgd": "the SGD loop",
              "rewire": "the rewiring event (pairs)", "rewire_write": "the rewiring event",
              "cht": "CHT's paths"}
NOTICE_AFTER_S = 2.0
"""A loop's first call in a process that has not returned after this long is compiling (numba's cache was empty
or stale: a fresh install, a changed source): one line on stderr says so. Loaded from the cache, the first call
takes ≈ 0.01 s, 0.5 s with the process's first parallel launch."""


def _notice(kernel: str) -> threading.Timer | None:
    """At a loop's first call in this process, a timer that prints, unless cancelled in time, that the loop is
    being compiled: 2–10 s a loop, once per install (docs/benchmarks.md §30), which would otherwise look like a
    hung run before its first progress line."""
    with _LOCK:
        if kernel in _CALLED:
            return None
        _CALLED.add(kernel)

    def say() -> None:
        print(f"olfacto: compiling {LOOP_NAMES.get(kernel, kernel)} for this CPU, once (a few seconds; numba "
              f"keeps it in its cache for later runs)", file=sys.stderr, flush=True)

    timer = threading.Timer(NOTICE_AFTER_S, say)
    timer.daemon = True
    timer.start()
    return timer


def _run_shared(kernel: str, args: list, outs: list) -> None:
    """Run the loop ``kernel`` with the cores shared among the loops running at once: two batches of a sweep run at
    once in two threads (docs/benchmarks.md §19), so two loops may be called at once from XLA's threads. The first
    alone takes every core, a second one what is left; each loop is told how many it got (its last argument: the
    event loops split their rows in parts by it, each part with its scratch). Each row is summed by one thread
    in one order, so the results do not depend on it. (Serialising the calls instead took a 54-run SGD sweep
    186 s, this 166 s; §24.)"""
    import numba

    with _LOCK:
        _ACTIVE[0] += 1
        share = max(1, min(numba.config.NUMBA_NUM_THREADS, _CORES // _ACTIVE[0]))
    timer = _notice(kernel)
    try:
        numba.set_num_threads(share)  # this thread's launches only (numba's setting is per thread)
        _loops()[kernel](*args, *outs, share)
    finally:
        if timer is not None:
            timer.cancel()
        with _LOCK:
            _ACTIVE[0] -= 1


def usable_cores() -> int:
    """The cores this process may use (a SLURM job's, not the node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CORES = usable_cores()
_HANDLERS = {kernel: _handler(kernel) for kernel in TARGETS}  # kept alive for the process: XLA holds their addresses


@lru_cache(maxsize=None)
def available() -> bool:
    """Whether the loops can run here: numba installed and the targets registered with XLA:CPU (once). Choosing a
    plan asks this; numba itself (≈ 100 MB, which the memory check would see appear) loads at the first call."""
    if importlib.util.find_spec("numba") is None:  # pragma: no cover - a dependency; a platform without its wheels
        return False
    for kernel, target in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(_HANDLERS[kernel]), platform="cpu")
    return True


def _require() -> None:
    if not available():  # pragma: no cover
        raise RuntimeError("olfacto's compiled loops need numba (pip install numba)")


def sddmm(U: jax.Array, V: jax.Array, idx: jax.Array) -> jax.Array:
    """ΔW[i,k] = U[i] · V[idx[i,k]] (float32; ``idx`` int32, every entry a row of V) by the compiled loop, on
    the CPU backend. Equal to :func:`olfacto.model.chunked.sddmm_gather` within float32 round-off."""
    _require()
    if U.shape[1] != V.shape[1] or U.shape[0] != idx.shape[0]:
        raise ValueError(f"sddmm: U {U.shape}, V {V.shape} and idx {idx.shape} do not match")
    if V.shape[0] == 0:  # no row to gather: every product is an empty sum
        return jnp.zeros(idx.shape, jnp.float32)
    call = jax.ffi.ffi_call(TARGETS["sddmm"], jax.ShapeDtypeStruct(idx.shape, jnp.float32), vmap_method="sequential")
    return call(U.astype(jnp.float32), V.astype(jnp.float32), idx.astype(jnp.int32))


def spmm(weights: jax.Array, idx: jax.Array, V: jax.Array, valid: jax.Array | None = None) -> Any:
    """out[i] = Σ_k W[i,k] · V[idx[i,k]] (N_post × d; float32, ``idx`` int32, every entry a row of V) by the compiled
    loop, on the CPU backend: slot after slot into the row's d sums (fused multiply-adds), as
    :func:`olfacto.model.sparse.matmat`'s ``gather`` kernel adds them (``(W ⊙ C) Vᵀ`` transposed) — equal to it
    within float32 round-off (bit for bit where XLA fuses the same multiply-adds: not for every d), and
    zero-weight slots appended leave the bits unchanged. With ``valid`` (the mask C, N_post × K): (out, squares),
    squares[i] = Σ_k C[i,k] V[idx[i,k]]² from the same gathered rows — the second sparse product of
    :func:`olfacto.model.sparse.project_squares` without a second pass over the synapses."""
    _require()
    if weights.shape != idx.shape or (valid is not None and valid.shape != idx.shape):
        raise ValueError(f"spmm: weights {weights.shape}, idx {idx.shape}"
                         + ("" if valid is None else f", valid {valid.shape}") + f" and V {V.shape} do not match")
    rows, d = idx.shape[0], V.shape[1]
    if V.shape[0] == 0:
        zeros = jnp.zeros((rows, d), jnp.float32)
        return zeros if valid is None else (zeros, zeros)
    out = jax.ShapeDtypeStruct((rows, d), jnp.float32)
    operands = (weights.astype(jnp.float32), idx.astype(jnp.int32))
    if valid is None:
        call = jax.ffi.ffi_call(TARGETS["spmm"], out, vmap_method="sequential")
        return call(*operands, V.astype(jnp.float32))
    call = jax.ffi.ffi_call(TARGETS["spmm_squares"], (out, out), vmap_method="sequential")
    return call(*operands, valid.astype(bool), V.astype(jnp.float32))


def sgd_block(weights: jax.Array, idx: jax.Array, valid: jax.Array, y_pre: jax.Array, y_post: jax.Array,
              lr: jax.Array) -> jax.Array:
    """The weights (N_post, K) after the n updates of ``y_pre`` (n, B, N_pre) and ``y_post`` (n, B, N_post) of
    per-breath SGD with learning rate ``lr`` (module docstring), by the compiled loop, on the CPU backend.
    Equal to n steps of :func:`olfacto.model.rules.sgd` with ``optax.sgd(lr)`` within float32 round-off."""
    _require()
    n_post = weights.shape[0]
    if y_pre.ndim != 3 or y_post.shape != (*y_pre.shape[:2], n_post) or idx.shape != weights.shape:
        raise ValueError(f"sgd_block: weights {weights.shape}, idx {idx.shape}, y_pre {y_pre.shape} and y_post "
                         f"{y_post.shape} do not match")
    call = jax.ffi.ffi_call(TARGETS["sgd"], jax.ShapeDtypeStruct(weights.shape, jnp.float32),
                            vmap_method="sequential", input_output_aliases={0: 0})
    return call(weights.astype(jnp.float32), idx.astype(jnp.int32), valid.astype(bool), y_pre.astype(jnp.float32),
                y_post.astype(jnp.float32), jnp.reshape(lr, (1,)).astype(jnp.float32))


def regrowth(weights: jax.Array, idx: jax.Array, valid: jax.Array, priority: jax.Array | None,
             candidates: jax.Array, score: jax.Array | None, r_i: jax.Array, count: jax.Array, r_max: int,
             n_pre: int, size: int, windows: bool) -> tuple[jax.Array, jax.Array]:
    """(target, partner) of :func:`olfacto.model.rewiring.regrowth` by the compiled loop, on the CPU backend: the
    q-th pruned slot of each row (K_max: none) and its new partner, rows × r_max each. Per block of 64 rows, the
    r_max smallest (priority, slot) of each row (``priority`` None: |``weights``|), one row per SIMD lane by
    selects rather than a branch per slot; then per row the pool's invalid candidates — a window's
    (``windows``: ``candidates`` holds each row's offset o_i in its first column, the pool o_i, …,
    o_i + size − 1 mod ``n_pre``) by its partners' places in it, an arbitrary pool's by comparing each candidate
    with the row's partners and earlier candidates —, then the first valid candidates or the best
    valid finite ``score``. ``r_i`` and ``count`` (P_i) per row as :func:`~olfacto.model.rewiring.prunes` and
    :func:`~olfacto.model.rewiring.pool_of` give them. Order and integer work only: the same as XLA's path to
    the bit. :func:`rewire` is the same loop writing the state itself."""
    out = (jax.ShapeDtypeStruct((idx.shape[0], r_max), jnp.int32),) * 2
    call = jax.ffi.ffi_call(TARGETS["rewire"], out, vmap_method="sequential")
    return call(weights.astype(jnp.float32), idx.astype(jnp.int32),
                *_event_operands("regrowth", weights, idx, valid, priority, candidates, score, r_i, count, r_max,
                                 n_pre, size, windows))


def _event_operands(name: str, weights: jax.Array, idx: jax.Array, valid: jax.Array, priority: jax.Array | None,
                    candidates: jax.Array, score: jax.Array | None, r_i: jax.Array, count: jax.Array, r_max: int,
                    n_pre: int, size: int, windows: bool) -> tuple:
    """The event loop's operands after the state's (``valid`` … ``shape``) for :func:`regrowth` and :func:`rewire`,
    checked against ``idx``: a missing ``priority`` or ``score`` as an empty array, the static sizes and flags
    as one int32 vector."""
    _require()
    rows = idx.shape[0]
    if weights.shape != idx.shape or valid.shape != idx.shape or candidates.shape[0] != rows \
            or (priority is not None and priority.shape != idx.shape):
        raise ValueError(f"{name}: weights {weights.shape}, idx {idx.shape}, valid {valid.shape} and candidates "
                         f"{candidates.shape} do not match")
    empty = jnp.zeros((rows, 0), jnp.float32)
    shape = jnp.array([r_max, n_pre, size, int(windows), int(score is not None), int(priority is None)], jnp.int32)
    return (valid.astype(bool), empty if priority is None else priority.astype(jnp.float32),
            candidates.astype(jnp.int32), empty if score is None else score.astype(jnp.float32),
            r_i.astype(jnp.int32), count.astype(jnp.int32), shape)


def rewire(weights: jax.Array, idx: jax.Array, origin: jax.Array, valid: jax.Array, priority: jax.Array | None,
           candidates: jax.Array, score: jax.Array | None, r_i: jax.Array, count: jax.Array, r_max: int, n_pre: int,
           size: int, windows: bool, after: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The state after :func:`regrowth`'s choices, written by the same loop in place: (weights, idx, origin,
    target) with each regrown slot's weight 0, its new partner and its origin flag False, and ``target`` as
    :func:`regrowth` gives it — the same arrays as XLA's scatter of :func:`regrowth`'s pairs, to the bit.

    The three state arrays are the call's operands and its results at once (``input_output_aliases``), passed
    as (1, rows, K): inside a program of one run (:func:`olfacto.engine.programs.over_runs` takes its leading axis
    off) they are then the donated buffers themselves, whereas the (rows, K) view of them — a bitcast — made
    XLA copy each operand before the call and each result after it (24 → 64 ms an event, docs/benchmarks.md §25).
    Where the operands are no donated buffers XLA still copies them: the same result, slower. ``after``: values
    the loop does not read but waits for — what must still read these arrays as they were (e.g. the other
    direction's CHT paths, which read both masks), so that XLA orders it first instead of copying for it."""
    rows, k = idx.shape
    if origin.shape != idx.shape:
        raise ValueError(f"rewire: origin {origin.shape} and idx {idx.shape} do not match")
    operands = _event_operands("rewire", weights, idx, valid, priority, candidates, score, r_i, count, r_max, n_pre,
                               size, windows)
    lead = (1, rows, k)
    out = (jax.ShapeDtypeStruct(lead, jnp.float32), jax.ShapeDtypeStruct(lead, jnp.int32),
           jax.ShapeDtypeStruct(lead, jnp.bool_), jax.ShapeDtypeStruct((rows, r_max), jnp.int32))
    call = jax.ffi.ffi_call(TARGETS["rewire_write"], out, vmap_method="sequential",
                            input_output_aliases={0: 0, 1: 1, 2: 2})
    w, i, o, target = call(weights.astype(jnp.float32).reshape(lead), idx.astype(jnp.int32).reshape(lead),
                           origin.astype(bool).reshape(lead), *operands,
                           jnp.zeros((1,), jnp.int32) if after is None else after.reshape(-1).astype(jnp.int32))
    return w.reshape(rows, k), i.reshape(rows, k), o.reshape(rows, k), target


def cht_paths(fwd: jax.Array, deg_f: jax.Array, back: jax.Array, deg_b: jax.Array, seeds: jax.Array,
              count: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """(ends, score) of :func:`olfacto.model.rewiring.cht_candidates` by the compiled loop, on the CPU backend:
    per row, its ``size`` length-3 paths through the slots of ``fwd`` (rows × K), ``back`` and ``fwd`` again
    (in-degrees ``deg_f``, ``deg_b``), drawn by :func:`~olfacto.model.rewiring.path_bits` from the row's
    ``seeds``; a valid path's score is how many of the row's valid paths end where it does, an invalid one's
    −∞. The same integers and float32 products as XLA's path: equal to the bit."""
    _require()
    n = fwd.shape[0]
    out = (jax.ShapeDtypeStruct((n, size), jnp.int32), jax.ShapeDtypeStruct((n, size), jnp.float32))
    call = jax.ffi.ffi_call(TARGETS["cht"], out, vmap_method="sequential")
    return call(fwd.astype(jnp.int32), deg_f.astype(jnp.int32), back.astype(jnp.int32), deg_b.astype(jnp.int32),
                jax.lax.bitcast_convert_type(seeds.astype(jnp.uint32), jnp.int32), count.astype(jnp.int32))
