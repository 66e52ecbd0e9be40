"""kafka-python's record and partition tuples (kafka.structs): kafka-python's
own classes when it is installed, else namedtuples with the same fields."""

import collections

from ._compat import KafkaConsumerRecord, KafkaRecordMetadata, kafka_python

__all__ = ["TopicPartition", "OffsetAndMetadata", "OffsetAndTimestamp", "BrokerMetadata",
           "PartitionMetadata", "MemberInformation", "GroupInformation", "ConsumerRecord",
           "RecordMetadata"]

if kafka_python is not None:
    from kafka.structs import (TopicPartition, OffsetAndMetadata, OffsetAndTimestamp, BrokerMetadata,
                               PartitionMetadata, MemberInformation, GroupInformation)
    ConsumerRecord = KafkaConsumerRecord
    RecordMetadata = KafkaRecordMetadata
else:
    TopicPartition = collections.namedtuple("TopicPartition", ["topic", "partition"])
    OffsetAndMetadata = collections.namedtuple("OffsetAndMetadata", ["offset", "metadata"])
    OffsetAndTimestamp = collections.namedtuple("OffsetAndTimestamp", ["offset", "timestamp"])
    BrokerMetadata = collections.namedtuple("BrokerMetadata", ["nodeId", "host", "port", "rack"])
    PartitionMetadata = collections.namedtuple("PartitionMetadata",
                                               ["topic", "partition", "leader", "replicas", "isr", "error"])
    MemberInformation = collections.namedtuple(
        "MemberInformation", ["member_id", "client_id", "client_host", "member_metadata", "member_assignment"])
    GroupInformation = collections.namedtuple(
        "GroupInformation", ["error_code", "group", "state", "protocol_type", "protocol", "members",
                             "authorized_operations"])
    ConsumerRecord = collections.namedtuple(
        "ConsumerRecord", ["topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value",
                           "headers", "checksum", "serialized_key_size", "serialized_value_size",
                           "serialized_header_size"])
    RecordMetadata = collections.namedtuple(
        "RecordMetadata", ["topic", "partition", "topic_partition", "offset", "timestamp", "log_start_offset",
                           "checksum", "serialized_key_size", "serialized_value_size",
                           "serialized_header_size"])


def make(cls, **values):
    """A namedtuple of cls from keyword values; fields this version of
    kafka-python has and klog does not know (leader_epoch, ...) are None."""
    return cls(**{f: values.get(f) for f in cls._fields})


def tp(x):
    """Any (topic, partition) pair as this module's TopicPartition."""
    if type(x) is TopicPartition:
        return x
    topic, partition = x
    return TopicPartition(topic, int(partition))


def offset_and_metadata(offset, metadata=""):
    return make(OffsetAndMetadata, offset=offset, metadata=metadata, leader_epoch=-1)
