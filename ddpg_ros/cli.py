"""Shared command-line plumbing: DDPG settings as flags, and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from ddpg_ros.config import DDPGConfig, field_docs


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`DDPGConfig` field, with its default and docstring."""
    group = parser.add_argument_group('DDPG hyper-parameters')
    docs = field_docs()
    defaults = DDPGConfig()
    for f in dataclasses.fields(DDPGConfig):
        flag = '--' + f.name.replace('_', '-')
        default = getattr(defaults, f.name)
        if f.name == 'hidden_sizes':
            group.add_argument(flag, type=int, nargs='+', default=list(default),
                               help=docs.get(f.name))
        else:
            group.add_argument(flag, type=type(default), default=default, help=docs.get(f.name))


def config_from_args(args: argparse.Namespace) -> DDPGConfig:
    """Build (and so validate) the config from parsed flags."""
    return DDPGConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DDPGConfig)})


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run ``body``; bad input becomes one ``prog: error: ...`` line and exit status 2.

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
