"""``ddpg-discovery-server``: finds the wheel's server, gives it its libraries, and it serves."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest

from ddpg_ros.fleet import discovery_server
from ddpg_ros.fleet.discovery_server import (DiscoveryServerError, client_setting,
                                             fast_dds_major, find_binary, library_folders,
                                             server_command, server_environment)

from conftest import ProcessGroup

EVENT_TIMEOUT = 60.0
"""Seconds for one awaited event on two loaded cores; never reached when it works."""

TALKER = '''
import rclpy
from rclpy.executors import ExternalShutdownException
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('talker')
publisher = node.create_publisher(String, 'chatter', 10)
node.create_timer(0.1, lambda: publisher.publish(String(data='through the server')))
print('talker up', flush=True)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
node.destroy_node()
rclpy.try_shutdown()
'''
LISTENER = '''
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('listener')
heard = []
node.create_subscription(String, 'chatter', lambda msg: heard.append(msg.data), 10)
print('listener up', flush=True)
while not heard:
    rclpy.spin_once(node, timeout_sec=0.1)
print('heard:', heard[0], flush=True)
node.destroy_node()
rclpy.try_shutdown()
'''


def installed_binary() -> Path:
    try:
        return find_binary()
    except DiscoveryServerError as exc:
        pytest.skip(f'the Fast DDS wheel is not installed here: {exc}')


def unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_a_missing_server_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DiscoveryServerError, match=f'no fast-discovery-server in {tmp_path} '
                                                   'or on PATH: install the Fast DDS wheel'):
        find_binary(scripts=tmp_path, path=str(tmp_path))
    monkeypatch.setattr(discovery_server, 'find_binary',
                        lambda: find_binary(scripts=tmp_path, path=str(tmp_path)))
    assert discovery_server.main(['--port', '11888']) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith('ddpg-discovery-server: error: no fast-discovery-server in ')


def test_the_options_map_onto_the_servers_and_its_libraries_come_first() -> None:
    binary = installed_binary()
    lead = ['42'] if fast_dds_major(binary) == 3 else []  # Kilted's Fast DDS 3 | Jazzy's 2
    assert server_command(binary, 1, '127.0.0.1', 11888, ['-b']) == [
        str(binary), *lead, '-i', '1', '-l', '127.0.0.1', '-p', '11888', '-b']
    assert client_setting(1, '127.0.0.1', 11888) == ';127.0.0.1:11888'
    folders = [str(folder) for folder in library_folders(binary)]
    prefix = binary.resolve().parent.parent
    assert folders[0] == str(prefix / 'lib')
    if binary.parent == Path(sys.executable).parent:  # the wheel's: its private libraries
        assert any(folder.endswith('.libs') for folder in folders), folders
    env = server_environment(binary, {'LD_LIBRARY_PATH': '/elsewhere'})
    assert env['LD_LIBRARY_PATH'].split(':') == [*folders, '/elsewhere']


def test_fast_dds_3s_server_gets_its_command_number_first(tmp_path: Path) -> None:
    binary = tmp_path / 'bin' / 'fast-discovery-server'
    binary.parent.mkdir()
    binary.touch()
    (tmp_path / 'lib').mkdir()
    (tmp_path / 'lib' / 'libfastrtps.so.2.14').touch()
    assert fast_dds_major(binary) == 2
    assert server_command(binary, 0, '0.0.0.0', 11811)[1:3] == ['-i', '0']
    (tmp_path / 'lib' / 'libfastdds.so.3.2').touch()
    assert fast_dds_major(binary) == 3
    assert server_command(binary, 0, '0.0.0.0', 11811) == [
        str(binary), '42', '-i', '0', '-l', '0.0.0.0', '-p', '11811']


@pytest.mark.parametrize('arguments', [['--port', '0'], ['--port', 'x'], ['--id', '256']])
def test_bad_options_are_usage_errors(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        discovery_server.main(arguments)
    assert exit_info.value.code == 2


def test_two_nodes_find_each_other_through_the_server(ros_processes: ProcessGroup) -> None:
    installed_binary()
    port = unused_udp_port()
    clients = {**ros_processes.env, 'ROS_DISCOVERY_SERVER': f'127.0.0.1:{port}'}
    # The nodes first: with no server yet they cannot discover each other (discovery server
    # clients do no multicast); they connect once it is there.
    talker = ros_processes.start([sys.executable, '-c', TALKER], name='talker', env=clients)
    listener = ros_processes.start([sys.executable, '-c', LISTENER], name='listener',
                                   env=clients)
    for process, line in ((talker, 'talker up'), (listener, 'listener up')):
        assert process.wait_for_output(line, EVENT_TIMEOUT), process.output()
    # Without the venv's library path: the command supplies it.
    bare = {k: v for k, v in ros_processes.env.items() if k != 'LD_LIBRARY_PATH'}
    server = ros_processes.start([sys.executable, '-m', 'ddpg_ros.fleet.discovery_server',
                                  '--port', str(port), '--address', '127.0.0.1'],
                                 name='discovery-server', env=bare)
    assert server.wait_for_output('### Server ', EVENT_TIMEOUT), server.output()
    assert re.search(r'### Server (is running|started) ###', server.output()), server.output()
    assert f'ROS_DISCOVERY_SERVER=127.0.0.1:{port}' in server.output()
    assert listener.wait(EVENT_TIMEOUT) == 0, listener.output() + talker.output()
    assert 'heard: through the server' in listener.output()
    # exec: the pid that was started is the server's, and a signal ends it cleanly.
    assert talker.stop() == 0, talker.output()
    assert server.stop() == 0, server.output()
    assert 'Server shut down' in server.output()
