"""QoS profiles shared by every ddpg_ros node, so that both ends of a topic always agree."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

CONTROL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Reliable, keep last 10, volatile: what ros2_control's controllers use. Reliable because in
lockstep a lost state or command stalls the loop; volatile because a stale state is worse
than none."""

STATE_QOS = CONTROL_QOS
"""``joint_states``."""

COMMAND_QOS = CONTROL_QOS
"""``effort_controller/commands``."""

DIAGNOSTICS_QOS = CONTROL_QOS
"""``/diagnostics``: reliable, depth 10, as ``diagnostic_aggregator`` subscribes."""

CLOCK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""``/clock``: only the newest time matters; a reliable writer also serves rclpy's
best-effort time source."""

IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=2,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""``mujoco_sim/image``: a reliable writer serves both reliable subscribers (``ros2 topic hz``)
and best-effort ones (image viewers with sensor-data QoS); a short queue, because a slow
viewer wants the newest picture, not a backlog."""
