"""kafka-python's API over klog: change the import line, keep the code.

    from klog.kafka import KafkaProducer, KafkaConsumer   # was: from kafka import ...

    p = KafkaProducer(path="data", value_serializer=str.encode)     # a directory, in this process
    p = KafkaProducer(bootstrap_servers="127.0.0.1:9092")          # a `klog serve` (or Kafka)

With ``bootstrap_servers=`` the object *is* kafka-python's own (it speaks
the Kafka protocol to `klog serve`), so every kafka-python feature is
there.  With ``path=`` (a klog data directory) or ``instance=`` (an open
klog.Instance) klog.kafka implements kafka-python's classes over klog in
this process: KafkaProducer, KafkaConsumer, KafkaAdminClient, with
kafka-python's records, futures, TopicPartition, OffsetAndMetadata and
exceptions (klog.kafka.errors).  kafka-python's keyword arguments that mean
something here are used, those that hold anyway (``retries``) accepted,
the others (network settings) refused with the reason unless given their
default; see each class.

The shared names (structs, errors, admin requests) are kafka-python's own
classes when it is installed, look-alikes otherwise (then only path= works).
"""

from . import errors
from ._compat import kafka_python
from .admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from .consumer import ConsumerRebalanceListener, KafkaConsumer
from .producer import FutureRecordMetadata, KafkaProducer
from .structs import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, RecordMetadata, TopicPartition

__all__ = ["KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "ConsumerRebalanceListener", "TopicPartition",
           "OffsetAndMetadata", "OffsetAndTimestamp", "ConsumerRecord", "RecordMetadata", "FutureRecordMetadata",
           "NewTopic", "NewPartitions", "ConfigResource", "ConfigResourceType", "errors"]

if kafka_python is not None:   # the rest of kafka-python's top-level names, for network use
    from kafka import BrokerConnection, KafkaClient  # noqa: F401
    from kafka.serializer import Deserializer, Serializer  # noqa: F401
    __all__ += ["KafkaClient", "BrokerConnection", "Serializer", "Deserializer"]
