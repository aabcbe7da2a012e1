"""The experiment configuration: typed sections (:mod:`.schema`), read from YAML with dotted overrides
(:mod:`.loading`), checked before any work (:mod:`.checks`), split into compiled and traced parts
(:mod:`.tree`, imported on first use: it needs JAX).

>>> from olfacto import config
>>> cfg = config.from_dict(**{"circuit.n_cortex": 500, "learning.lr": 0.01})
>>> cfg.circuit.n_cortex
500
"""

from .loading import (check_unique, from_dict, load, parse_override, parse_value, read_yaml, replace, set_dotted,
                      validate)
from .schema import (LATE_DEFAULTS, PATH_KEYS, ROLES, UNITS, Circuit, Config, ConfigError, Learning, NasalCycle, Odors,
                     Protocol, Recurrence, Rewiring, Run, dim_name, get_dotted, inherit_of, key_attrs, keys_by_role, leaf_keys,
                     role_of, sections)

__all__ = ["LATE_DEFAULTS", "PATH_KEYS", "ROLES", "UNITS", "Circuit", "Config", "ConfigError", "Learning", "NasalCycle", "Odors",
           "Protocol", "Recurrence", "Rewiring", "Run", "check_unique", "dim_name", "from_dict", "get_dotted", "inherit_of",
           "key_attrs", "keys_by_role", "leaf_keys", "load", "parse_override", "parse_value", "read_yaml", "replace",
           "role_of", "sections", "set_dotted", "validate"]
