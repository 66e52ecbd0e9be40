"""KafkaAdminClient: kafka-python's admin client over a local klog
directory, or kafka-python's own when bootstrap_servers= is given; and its
request objects (NewTopic, NewPartitions, ConfigResource,
ConfigResourceType), kafka-python's own when it is installed."""

import enum
import re

from .. import errors as _k
from .._conf import Conf
from ..instance import Instance
from . import _config
from ._compat import default_config, kafka_python, remote
from .errors import (GroupIdNotFoundError, InvalidConfigurationError, InvalidPartitionsError,
                     InvalidReplicationAssignmentError, InvalidReplicationFactorError, InvalidTopicError,
                     KafkaConfigurationError, KafkaError, NoError, NonEmptyGroupError, TopicAlreadyExistsError,
                     UnknownTopicOrPartitionError, translate, translated)
from .structs import GroupInformation, MemberInformation, TopicPartition, offset_and_metadata, tp as _tp

__all__ = ["KafkaAdminClient", "NewTopic", "NewPartitions", "ConfigResource", "ConfigResourceType"]

if kafka_python is not None:
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    from kafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
else:
    class NewTopic:
        def __init__(self, name, num_partitions, replication_factor, replica_assignments=None, topic_configs=None):
            self.name = name
            self.num_partitions = num_partitions
            self.replication_factor = replication_factor
            self.replica_assignments = replica_assignments or {}
            self.topic_configs = topic_configs or {}

    class NewPartitions:
        def __init__(self, total_count, new_assignments=None):
            self.total_count = total_count
            self.new_assignments = new_assignments

    class ConfigResourceType(enum.IntEnum):
        BROKER = 4
        TOPIC = 2

    class ConfigResource:
        def __init__(self, resource_type, name, configs=None):
            if not isinstance(resource_type, ConfigResourceType):
                resource_type = ConfigResourceType[str(resource_type).upper()]
            self.resource_type = resource_type
            self.name = name
            self.configs = configs

    class ConsumerProtocolMemberMetadata:
        def __init__(self, version, subscription, user_data):
            self.version, self.subscription, self.user_data = version, subscription, user_data

    class ConsumerProtocolMemberAssignment:
        def __init__(self, version, assignment, user_data):
            self.version, self.assignment, self.user_data = version, assignment, user_data

        def partitions(self):
            return [TopicPartition(t, p) for t, ps in self.assignment for p in ps]

NODE_ID = 0          # the one "broker" a directory is
_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class Response:
    """What kafka-python's admin calls return as protocol responses:
    the attributes they have (topic_errors, topic_error_codes, resources)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return "Response(%s)" % ", ".join("%s=%r" % kv for kv in self.__dict__.items())


def _first_error(results):
    """kafka-python raises the first per-item error, after all were tried."""
    for _name, err in results:
        if err is not None:
            raise err


def _code(err):
    return 0 if err is None else getattr(err, "errno", -1)


def _kind(resource_type):
    t = getattr(resource_type, "name", resource_type)
    return str(t).upper()


class KafkaAdminClient:
    """kafka-python's KafkaAdminClient.

    ``KafkaAdminClient(bootstrap_servers=...)`` *is* kafka-python's.
    ``KafkaAdminClient(path=DIR)`` administers the klog data directory DIR
    in this process (or ``instance=`` an open klog.Instance).  A directory
    is one node (id 0) keeping one replica of each partition: a
    replication factor other than 1 (or -1, the default) is
    InvalidReplicationFactorError.  Calls that kafka-python answers with a
    protocol response return a :class:`Response` with the same attributes.
    """

    DEFAULT_CONFIG = default_config("KafkaAdminClient")

    def __new__(cls, **configs):
        if configs.get("bootstrap_servers") is not None:
            if configs.get("path") is not None or configs.get("instance") is not None:
                raise KafkaConfigurationError("KafkaAdminClient: give bootstrap_servers= or path=, not both")
            return remote("KafkaAdminClient")(**configs)
        return super().__new__(cls)

    def __init__(self, **configs):
        configs.pop("bootstrap_servers", None)
        path = configs.pop("path", None)
        instance = configs.pop("instance", None)
        if (path is None) == (instance is None):
            raise KafkaConfigurationError(
                "KafkaAdminClient needs path= (a klog data directory; or instance=) or bootstrap_servers= "
                "(a `klog serve` or Kafka, through kafka-python)")
        extra, _mine, _held = _config.split("KafkaAdminClient", configs, set(), set(), _config.ADMIN_HOLDS,
                                            _config.ADMIN_REFUSED)
        if extra:
            raise KafkaConfigurationError("Unrecognized configs: %s" % (sorted(extra),))
        self.config = dict(self.DEFAULT_CONFIG)
        self.config.update(configs)
        with translated():
            # Instance(path) shares the directory with every other klog
            # handle of this process on it (one instance per directory).
            self._inst = Instance(path) if path is not None else Instance(instance.path)
        self._closed = False

    def close(self):
        if not self._closed:
            self._closed = True
            self._inst.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- topics ----------------------------------------------------------------------------------
    def _topic_errors(self, t, validate_only):
        """Create (or check) one NewTopic; the kafka-python exception or None."""
        name = t.name
        partitions = t.num_partitions
        rf = t.replication_factor
        assignments = t.replica_assignments or {}
        configs = {str(k): v for k, v in (t.topic_configs or {}).items()}
        if assignments:
            if partitions not in (-1, None) or rf not in (-1, None):
                return InvalidReplicationAssignmentError(
                    "with replica_assignments, num_partitions and replication_factor must be -1")
            if sorted(assignments) != list(range(len(assignments))):
                return InvalidReplicationAssignmentError("replica_assignments must cover partitions 0..%d"
                                                         % (len(assignments) - 1))
            for p, brokers in assignments.items():
                if list(brokers) != [NODE_ID]:
                    return InvalidReplicationAssignmentError(
                        "partition %s on %r: a klog directory is the one node %d" % (p, brokers, NODE_ID))
            partitions = len(assignments)
        elif rf is not None and rf != -1 and rf != 1:
            return InvalidReplicationFactorError(
                "replication factor %d: a klog directory keeps one replica of each partition" % rf)
        if partitions in (-1, None):
            partitions = 0            # the directory's num.partitions
        if partitions < 0:
            return InvalidPartitionsError("num_partitions must be at least 1, or -1 for the default")
        if validate_only:
            if not _NAME.match(name) or name in (".", ".."):
                return InvalidTopicError("%r: 1 to 249 characters of [a-zA-Z0-9._-], not '.' or '..'" % name)
            if name in self._inst.list_topics(include_internal=True):
                return TopicAlreadyExistsError("topic %r already exists" % name)
            try:
                Conf(configs).free()
            except _k.KlogError as e:
                return translate(e, "admin")
            return None
        try:
            self._inst.create_topic(name, partitions, **configs)
        except _k.KlogError as e:
            return translate(e, "admin")
        return None

    def create_topics(self, new_topics, timeout_ms=None, validate_only=False):
        """Create NewTopics (``validate_only``: check names, settings and
        existence only).  Raises the first topic's error
        (TopicAlreadyExistsError, InvalidTopicError,
        InvalidConfigurationError, ...) after trying them all."""
        self._live()
        results = [(t.name, self._topic_errors(t, validate_only)) for t in new_topics]
        resp = Response(topic_errors=[(n, _code(e), None if e is None else str(e)) for n, e in results])
        _first_error(results)
        return resp

    def delete_topics(self, topics, timeout_ms=None):
        self._live()
        results = []
        for name in topics:
            try:
                self._inst.delete_topic(name)
                results.append((name, None))
            except _k.KlogError as e:
                results.append((name, translate(e, "admin")))
        resp = Response(topic_error_codes=[(n, _code(e)) for n, e in results])
        _first_error(results)
        return resp

    def list_topics(self):
        """Every topic's name, the internal ones included (as a broker's
        metadata has them)."""
        self._live()
        with translated():
            return self._inst.list_topics(include_internal=True)

    def describe_topics(self, topics=None):
        """kafka-python's topic metadata dicts (this node leads every
        partition); an unknown topic has error_code 3."""
        self._live()
        with translated():
            names = self._inst.list_topics(include_internal=True) if topics is None else list(topics)
            out = []
            for name in names:
                try:
                    n = self._inst.partition_count(name)
                except _k.UnknownTopicError:
                    out.append({"error_code": UnknownTopicOrPartitionError.errno, "topic": name,
                                "is_internal": False, "partitions": []})
                    continue
                out.append({"error_code": 0, "topic": name, "is_internal": name.startswith("__"),
                            "partitions": [{"error_code": 0, "partition": p, "leader": NODE_ID,
                                            "replicas": [NODE_ID], "isr": [NODE_ID], "offline_replicas": []}
                                           for p in range(n)]})
        return out

    def describe_cluster(self):
        return {"throttle_time_ms": 0, "brokers": [{"node_id": NODE_ID, "host": "localhost", "port": 0,
                                                    "rack": None}],
                "cluster_id": None, "controller_id": NODE_ID}

    def create_partitions(self, topic_partitions, timeout_ms=None, validate_only=False):
        """Grow topics: ``{name: NewPartitions(total_count)}``."""
        self._live()
        results = []
        for name, np in topic_partitions.items():
            err = None
            try:
                if np.new_assignments and any(list(b) != [NODE_ID] for b in np.new_assignments):
                    err = InvalidReplicationAssignmentError("a klog directory is the one node %d" % NODE_ID)
                elif np.total_count <= self._inst.partition_count(name):
                    err = InvalidPartitionsError("topic %r has %d partitions: the total must be above that"
                                                 % (name, self._inst.partition_count(name)))
                elif not validate_only:
                    self._inst.add_partitions(name, np.total_count)
            except _k.KlogError as e:
                err = translate(e, "admin")
            results.append((name, err))
        resp = Response(topic_errors=[(n, _code(e), None if e is None else str(e)) for n, e in results])
        _first_error(results)
        return resp

    def delete_records(self, records_to_delete, timeout_ms=None, partition_leader_id=None):
        """``{TopicPartition: offset}`` (-1: the end) -> ``{TopicPartition:
        {"low_watermark": new start offset}}`` (kafka-python 2.1's form)."""
        self._live()
        out = {}
        with translated():
            for t, off in records_to_delete.items():
                t = _tp(t)
                out[t] = {"low_watermark": self._inst.delete_records(t.topic, t.partition, int(off))}
        return out

    # -- configs ----------------------------------------------------------------------------------
    def describe_configs(self, config_resources, include_synonyms=False):
        """Topic resources: the keys set on the topic (``resources`` rows
        (error_code, error_message, resource_type, name, [(key, value,
        read_only, is_default, is_sensitive)]), as DescribeConfigsResponse
        v0).  Broker resources are refused (InvalidRequest, 42)."""
        self._live()
        rows = []
        for r in config_resources:
            if _kind(r.resource_type) != "TOPIC":
                rows.append((42, "klog.kafka over a directory describes topic configurations only",
                             int(r.resource_type), r.name, []))
                continue
            try:
                cfg = self._inst.describe_topic(r.name)["config"]
            except _k.KlogError as e:
                err = translate(e, "admin")
                rows.append((_code(err), str(err), int(r.resource_type), r.name, []))
                continue
            wanted = set(r.configs) if r.configs else None
            rows.append((0, None, int(r.resource_type), r.name,
                         [(k, v, False, False, False) for k, v in sorted(cfg.items())
                          if wanted is None or k in wanted]))
        return [Response(throttle_time_ms=0, resources=rows)]

    def alter_configs(self, config_resources):
        """Kafka's AlterConfigs (not incremental): the topic's keys become
        exactly those given; keys set before and not given go back to the
        directory's values.  Errors are raised (InvalidConfigurationError,
        UnknownTopicOrPartitionError)."""
        self._live()
        rows = []
        for r in config_resources:
            if _kind(r.resource_type) != "TOPIC":
                raise InvalidConfigurationError("klog.kafka over a directory alters topic configurations only")
            new = {str(k): v for k, v in (r.configs or {}).items()}
            with translated("admin"):
                old = self._inst.describe_topic(r.name)["config"]
                self._inst.alter_topic_config(r.name, delete=[k for k in old if k not in new], **new)
            rows.append((0, None, int(r.resource_type), r.name))
        return Response(throttle_time_ms=0, resources=rows)

    # -- groups -----------------------------------------------------------------------------------
    def list_consumer_groups(self, broker_ids=None):
        """[(group_id, "consumer")] of the groups with members or commits."""
        self._live()
        with translated("group"):
            return [(g, "consumer") for g in self._inst.list_groups()]

    def describe_consumer_groups(self, group_ids, group_coordinator_id=None, include_authorized_operations=False):
        """kafka-python's GroupInformation per group (state "Dead" for an
        unknown one, as Kafka answers)."""
        self._live()
        out = []
        for g in group_ids:
            try:
                d = self._inst.describe_group(g)
            except _k.UnknownGroupError:
                out.append(GroupInformation(0, g, "Dead", "", "", [], None))
                continue
            except _k.KlogError as e:
                raise translate(e, "group") from e
            members = []
            for m in d["members"]:
                by_topic = {}
                for a in m["assignment"]:
                    by_topic.setdefault(a["topic"], []).append(a["partition"])
                assignment = [(t, sorted(ps)) for t, ps in sorted(by_topic.items())]
                members.append(MemberInformation(m["member_id"], m["client_id"] or "", "localhost",
                                                 ConsumerProtocolMemberMetadata(0, sorted(by_topic), b""),
                                                 ConsumerProtocolMemberAssignment(0, assignment, b"")))
            out.append(GroupInformation(0, d["group"], d["state"], "consumer" if members or d["protocol"] else "",
                                        d["protocol"] or "", members, None))
        return out

    def list_consumer_group_offsets(self, group_id, group_coordinator_id=None, partitions=None):
        """``{TopicPartition: OffsetAndMetadata}`` of the group's commits
        (of ``partitions`` only if given: -1 where there is none)."""
        self._live()
        try:
            d = self._inst.describe_group(group_id)
        except _k.UnknownGroupError:
            d = {"offsets": []}
        except _k.KlogError as e:
            raise translate(e, "group") from e
        have = {TopicPartition(o["topic"], o["partition"]): offset_and_metadata(o["committed"], o["metadata"] or "")
                for o in d["offsets"] if o["committed"] is not None and o["committed"] >= 0}
        if partitions is None:
            return have
        return {_tp(p): have.get(_tp(p), offset_and_metadata(-1, "")) for p in partitions}

    def delete_consumer_groups(self, group_ids, group_coordinator_id=None):
        """[(group_id, error class)]: NoError, GroupIdNotFoundError,
        NonEmptyGroupError (it has active members)."""
        self._live()
        out = []
        for g in group_ids:
            try:
                self._inst.delete_group(g)
                out.append((g, NoError))
            except _k.UnknownGroupError:
                out.append((g, GroupIdNotFoundError))
            except _k.IllegalStateError:
                out.append((g, NonEmptyGroupError))
            except _k.KlogError as e:
                out.append((g, type(translate(e, "group"))))
        return out

    def _live(self):
        if self._closed:
            raise KafkaError("KafkaAdminClient is closed")
