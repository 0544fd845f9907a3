"""Config node -> object through Hydra's ``instantiate``, with one-line errors naming the key.

Kept apart from :mod:`dgan.config.builder` (which assembles a whole training run and imports
Lightning) so that the small commands (generate, evaluate) start quickly.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate


class ConfigError(ValueError):
    """A configuration value or key that cannot work; the message names it."""


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """Instantiate config ``node`` (found at ``key``); errors name the key."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(_explain(key, node, cause)) from err
    except (ValueError, TypeError) as err:
        raise ConfigError(_explain(key, node, err)) from err


def _explain(key: str, node: Any, err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, TypeError) and "unexpected keyword argument" in text:
        bad = text.split("'")[-2] if "'" in text else "?"
        return f"{key}.{bad}: unknown key for {node.get('_target_', key)}"
    if "=" in text.split(" ")[0]:  # our modules start messages with "name=value"
        return f"{key}.{text}"
    return f"{key}: {text}"
