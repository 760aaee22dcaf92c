"""Shared command-line plumbing: DDPG settings as flags, and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from ddpg_ros.core.config import DDPGConfig, field_docs


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """
    Each option's default at the end of its help, once.

    Left out where the help already says its default in words (``(default: the
    checkpoint's)``), for a switch (``--no-progress``: off unless given) and where there is
    none to show: a required option, or a default of ``None`` or ``''``.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ''
        if ('(default' in text or action.required or action.nargs == 0
                or action.default in (None, '', argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action) or text


def add_config_arguments(parser: argparse.ArgumentParser, preset_note: str = '') -> None:
    """
    Add one ``--flag`` per :class:`DDPGConfig` field, with its default and docstring.

    A flag that is not given is absent from the parsed namespace (not set to its default), so
    that a preset can supply the value; see :func:`given_config_values`.

    :param preset_note: said in the group's description, e.g. where the values come from.
    """
    group = parser.add_argument_group('DDPG hyper-parameters', preset_note or None)
    docs = field_docs()
    defaults = DDPGConfig()
    for f in dataclasses.fields(DDPGConfig):
        flag = '--' + f.name.replace('_', '-')
        default = getattr(defaults, f.name)
        if isinstance(default, tuple):
            shown = ' '.join(str(h) for h in default) or 'none'
            # An empty list is a value of its own where the default is empty (critic widths).
            kind: dict[str, Any] = {'type': int, 'nargs': '+' if default else '*'}
        elif isinstance(default, bool):
            shown, kind = str(default).lower(), {'type': parse_bool, 'metavar': '{true,false}'}
        else:
            shown, kind = default, {'type': type(default)}
        # The help text shows DDPGConfig's default; the parsed value stays "not given".
        help_text = f'{docs.get(f.name, "")} (DDPGConfig default: {shown})'.replace('%', '%%')
        group.add_argument(flag, default=argparse.SUPPRESS, help=help_text, **kind)


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``) as a flag's value; else an error."""
    words = {'true': True, '1': True, 'yes': True, 'false': False, '0': False, 'no': False}
    try:
        return words[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f'{text!r} is not true or false') from None


def given_config_values(args: argparse.Namespace) -> dict[str, Any]:
    """Return the :class:`DDPGConfig` fields that were given as flags, and only those."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(DDPGConfig)
            if hasattr(args, f.name)}


def config_from_args(args: argparse.Namespace,
                     base: dict[str, Any] | None = None) -> DDPGConfig:
    """
    Build (and so validate) the config: ``base`` (a preset), then the given flags over it.

    :param base: DDPGConfig keyword arguments the flags override; fields in neither keep
        DDPGConfig's defaults.
    """
    return DDPGConfig(**{**(base or {}), **given_config_values(args)})


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """
    Run ``body``; bad input becomes one ``prog: error: ...`` line and exit status 2.

    Only errors that describe the user's input are caught (``ValueError`` and its
    subclasses, missing files); anything else is a bug and keeps its traceback.
    """
    try:
        return body()
    except (ValueError, FileNotFoundError) as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
