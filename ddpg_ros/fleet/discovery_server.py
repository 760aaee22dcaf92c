"""
``ddpg-discovery-server``: the Fast DDS Discovery Server of the installed wheels, ready to run.

    ddpg-discovery-server                          # id 0, every interface, UDP port 11811
    ddpg-discovery-server --port 11888 --address 192.168.1.10
    ddpg-discovery-server --id 1 -- --backup       # after --: passed on as they are

The Fast DDS wheel that the README's setup installs puts ``fast-discovery-server`` into the
environment's ``bin/``, but the binary does not find its libraries there ("libfastrtps.so...:
cannot open shared object file"). This command finds the binary beside the running Python
(else on ``PATH``), puts the library folders of the binary's own install on
``LD_LIBRARY_PATH`` (``<prefix>/lib`` and the wheels' ``ros_fast*.libs``), and replaces itself
with the server, so that its pid, signals and exit status are the server's. Clients find it
with ``ROS_DISCOVERY_SERVER=<address>:<port>`` (``;`` before the address for each id below
this one's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

PROG = 'ddpg-discovery-server'
BINARY = 'fast-discovery-server'
DEFAULT_PORT = 11811
MAX_SERVER_ID = 255
SERVER_COMMAND = '42'
"""Fast DDS 3's ``fast-discovery-server`` wants this first ("Invalid command index" else)."""


class DiscoveryServerError(RuntimeError):
    """The server binary is not installed, or cannot be started."""


def find_binary(scripts: str | os.PathLike | None = None, path: str | None = None) -> Path:
    """
    Return the ``fast-discovery-server`` beside this Python (``scripts``), else on ``path``.

    :raises DiscoveryServerError: in neither.
    """
    scripts = Path(sysconfig.get_path('scripts') if scripts is None else scripts)
    candidate = scripts / BINARY
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(BINARY, path=path)
    if found is None:
        raise DiscoveryServerError(
            f'no {BINARY} in {scripts} or on PATH: install the Fast DDS wheel '
            '(pip install ros-jazzy-rmw-fastrtps-cpp, as the README does) or source a ROS 2 '
            'distro')
    return Path(found)


def library_folders(binary: Path) -> list[Path]:
    """Return the library folders of the install ``binary`` is part of (``<prefix>/lib``...)."""
    prefix = binary.resolve().parent.parent
    lib = prefix / 'lib'
    folders = [lib] if lib.is_dir() else []
    # The wheels' private copies (tinyxml2, OpenSSL) under mangled names: ros_fastrtps.libs.
    folders += sorted(path for path in lib.glob('python3*/site-packages/ros_fast*.libs')
                      if path.is_dir())
    return folders


def server_environment(binary: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``base`` (default: this environment) with the binary's libraries found first."""
    env = dict(os.environ if base is None else base)
    present = [folder for folder in env.get('LD_LIBRARY_PATH', '').split(os.pathsep) if folder]
    folders = [str(folder) for folder in library_folders(binary)]
    joined = [folder for folder in folders if folder not in present] + present
    if joined:
        env['LD_LIBRARY_PATH'] = os.pathsep.join(joined)
    return env


def fast_dds_major(binary: Path) -> int:
    """Return the major version of the Fast DDS that ``binary`` belongs to: 3 or 2."""
    for folder in library_folders(binary):
        if any(folder.glob('libfastdds.so.3*')):  # 2.x is libfastrtps.so.2.*
            return 3
    return 2


def server_command(binary: Path, server_id: int, address: str, port: int,
                   extra: Sequence[str] = (), major: int | None = None) -> list[str]:
    """
    Return the server's command line (its short options exist in every version).

    Fast DDS 3's binary (Kilted) takes a command number first, as ``fastdds discovery``
    passes it: ``SERVER_COMMAND`` runs a server; 2.x's (Jazzy) takes the options alone.
    """
    major = fast_dds_major(binary) if major is None else major
    lead = [SERVER_COMMAND] if major >= 3 else []
    return [str(binary), *lead, '-i', str(server_id), '-l', address, '-p', str(port), *extra]


def client_setting(server_id: int, address: str, port: int) -> str:
    """Return the ``ROS_DISCOVERY_SERVER`` value that reaches this server from a client."""
    host = '<this host>' if address in ('0.0.0.0', '::', '::0') else address
    return ';' * server_id + f'{host}:{port}'


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f'{text} is not a port in 1..65535')
    return port


def _server_id(text: str) -> int:
    server_id = int(text)
    if not 0 <= server_id <= MAX_SERVER_ID:
        raise argparse.ArgumentTypeError(f'{text} is not a server id in 0..{MAX_SERVER_ID}')
    return server_id


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Start the Fast DDS Discovery Server of the installed Fast DDS '
        'wheel (or ROS 2 distro), with its libraries found.',
        epilog='Arguments after -- go to fast-discovery-server as they are (e.g. -- --backup). '
        'Clients: ROS_DISCOVERY_SERVER=<address>:<port>.')
    parser.add_argument('-p', '--port', type=_port, default=DEFAULT_PORT,
                        help='UDP port to listen on (default %(default)s)')
    parser.add_argument('-i', '--id', dest='server_id', type=_server_id, default=0,
                        help='server id: its position in ROS_DISCOVERY_SERVER (default 0)')
    parser.add_argument('-l', '--address', default='0.0.0.0',
                        help='address to listen on (default %(default)s: every interface)')
    parser.add_argument('--print', dest='print_only', action='store_true',
                        help='print the environment and command, and exit')
    parser.add_argument('extra', nargs='*', metavar='-- ARG',
                        help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddpg-discovery-server``: exec the server; 1 if it cannot start."""
    args = _parser().parse_args(argv)
    try:
        binary = find_binary()
    except DiscoveryServerError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 1
    env = server_environment(binary)
    command = server_command(binary, args.server_id, args.address, args.port, args.extra)
    if args.print_only:
        print(f"LD_LIBRARY_PATH={env.get('LD_LIBRARY_PATH', '')} {' '.join(command)}")
        return 0
    print(f'{PROG}: clients: ROS_DISCOVERY_SERVER='
          f'{client_setting(args.server_id, args.address, args.port)}', file=sys.stderr,
          flush=True)
    try:
        os.execve(command[0], command, env)
    except OSError as exc:
        print(f'{PROG}: error: cannot start {binary}: {exc}', file=sys.stderr)
        return 1
    return 1  # not reached: execve returns only by raising


if __name__ == '__main__':
    sys.exit(main())
