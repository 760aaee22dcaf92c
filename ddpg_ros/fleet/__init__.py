"""
One learner, many robots: the actor/learner split over DDS, without ROS.

- :mod:`~ddpg_ros.fleet.wire`: the two messages (transition batches, policies) as bytes,
  with strict validation;
- :mod:`~ddpg_ros.fleet.ledger`: which batches of which actor were stored (de-duplication)
  and each actor's rate, lag and drops;
- :mod:`~ddpg_ros.fleet.learner`: the ``ddpg_learner`` core: ingest, train, version,
  checkpoint;
- :mod:`~ddpg_ros.fleet.actor`: a ``ddpg_agent``'s learning side when its learner is remote;
- :mod:`~ddpg_ros.fleet.settings`: the ``ddpg_learner`` node's parameters.

The ROS nodes (``ddpg_ros.ros.ddpg_learner_node``, ``ddpg_ros.ros.remote_actor``) only
convert messages to and from these and wire topics, services and timers.
"""
