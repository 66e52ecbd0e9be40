"""kafka-python keyword arguments over a local directory (internal).

Each of kafka-python's configuration names is one of:

* passed on to klog under the same name (linger_ms -> "linger.ms", ...);
* done by klog.kafka itself (serializers, acks, partitioner, ...);
* accepted because what it asks for always holds here (``retries``: a
  local write has no transient failure to retry) - the reason is kept in
  HOLDS for the documentation;
* refused, unless given kafka-python's default value (which changes
  nothing), with the reason: the network settings (a directory has no
  connection) and the few things klog does not have.

A name kafka-python does not have goes to klog as a klog key (klog checks
it: an unknown one is KafkaConfigurationError naming it).
"""

from ._compat import default_config
from .errors import KafkaConfigurationError

NETWORK = ("it configures the network connection to a broker, and a local directory (path=) has none; "
           "to reach a `klog serve`, give bootstrap_servers= instead (kafka-python then does it all)")
NO_METRICS = "metrics() reports klog's own counters (klog_stats); kafka-python's sampled metrics are not kept"

_NETWORK_NAMES = (
    "bootstrap_topics_filter", "connections_max_idle_ms", "receive_buffer_bytes", "send_buffer_bytes",
    "socket_options", "sock_chunk_bytes", "sock_chunk_buffer_count", "reconnect_backoff_ms",
    "reconnect_backoff_max_ms", "security_protocol", "api_version", "api_version_auto_timeout_ms",
    "selector", "kafka_client", "max_in_flight_requests_per_connection")

# The defaults of the refused names, for when kafka-python is not installed
# to say them (its DEFAULT_CONFIG wins when it is).
_FALLBACK_DEFAULTS = {
    "security_protocol": "PLAINTEXT", "api_version": None, "api_version_auto_timeout_ms": 2000,
    "connections_max_idle_ms": 540000, "receive_buffer_bytes": None, "send_buffer_bytes": None,
    "sock_chunk_bytes": 4096, "sock_chunk_buffer_count": 1000, "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 1000, "ssl_check_hostname": True, "metric_reporters": [],
    "metrics_num_samples": 2, "metrics_sample_window_ms": 30000, "metric_group_prefix": "consumer",
    "max_partition_fetch_bytes": 1048576, "transactional_id": None, "bootstrap_topics_filter": set(),
    "max_in_flight_requests_per_connection": 5,
}

PRODUCER_HERE = {"key_serializer", "value_serializer", "acks", "compression_type", "partitioner",
                 "max_request_size", "request_timeout_ms"}
PRODUCER_KEYS = {"client_id", "batch_size", "linger_ms", "buffer_memory", "max_block_ms", "enable_idempotence"}
PRODUCER_HOLDS = {
    "retries": "a write to the local log has no transient failure to retry: a record is written once or "
               "fails for good",
    "retry_backoff_ms": "nothing is retried",
    "metadata_max_age_ms": "partitions are read from the directory at every use: no metadata to refresh",
    "max_in_flight_requests_per_connection": "records are appended in the order they are sent: no request is "
                                             "in flight to reorder them",
}
PRODUCER_REFUSED = {
    "transactional_id": "klog has no transactions",
    "metric_reporters": NO_METRICS, "metrics_num_samples": NO_METRICS, "metrics_sample_window_ms": NO_METRICS,
}

CONSUMER_HERE = {"key_deserializer", "value_deserializer", "fetch_min_bytes", "fetch_max_wait_ms",
                 "default_offset_commit_callback", "partition_assignment_strategy", "exclude_internal_topics",
                 "group_id", "auto_offset_reset", "enable_auto_commit", "consumer_timeout_ms"}
CONSUMER_KEYS = {"client_id", "fetch_max_bytes", "auto_commit_interval_ms", "check_crcs", "max_poll_records",
                 "max_poll_interval_ms", "session_timeout_ms", "heartbeat_interval_ms", "group_instance_id"}
CONSUMER_HOLDS = {
    "request_timeout_ms": "no request crosses a network: local calls do not wait on one",
    "retry_backoff_ms": "nothing is retried",
    "metadata_max_age_ms": "new topics and partitions are seen at once: no metadata to refresh",
    "legacy_iterator": "one iterator serves",
    "isolation_level": "klog has no transactions: every record is committed",
    "allow_auto_create_topics": "klog creates no topic on first use",
    "enable_incremental_fetch_sessions": "there are no fetch sessions",
}
CONSUMER_REFUSED = {
    "max_partition_fetch_bytes": "klog reads whole batches, up to fetch_max_bytes per poll across partitions: "
                                 "there is no per-partition limit",
    "metric_reporters": NO_METRICS, "metrics_num_samples": NO_METRICS, "metrics_sample_window_ms": NO_METRICS,
    "metric_group_prefix": NO_METRICS,
}

ADMIN_HOLDS = {"client_id": "the admin client has no name in klog's statistics",
               "request_timeout_ms": "no request crosses a network: local calls do not wait on one",
               "retry_backoff_ms": "nothing is retried",
               "metadata_max_age_ms": "topics are read from the directory at every use"}
ADMIN_REFUSED = {"metric_reporters": NO_METRICS, "metrics_num_samples": NO_METRICS,
                 "metrics_sample_window_ms": NO_METRICS}


def _why_refused(name, refused):
    if name in refused:
        return refused[name]
    if name in _NETWORK_NAMES or name.startswith(("ssl_", "sasl_")):
        return NETWORK
    return None


def split(who, configs, here, keys, holds, refused):
    """configs -> (klog keyword arguments, options klog.kafka handles, the
    accepted-as-holding ones).  Raises KafkaConfigurationError for a refused
    name given a value other than kafka-python's default."""
    defaults = dict(_FALLBACK_DEFAULTS)
    defaults.update(default_config(who))
    to_klog, mine, held = {}, {}, {}
    for name, value in configs.items():
        if name in here:
            mine[name] = value
        elif name in keys:
            to_klog[name] = value
        elif name in holds:
            held[name] = value
        else:
            why = _why_refused(name, refused)
            if why is None and name in defaults:
                why = "klog.kafka does not implement it over a local directory"
            if why is None:
                to_klog[name] = value          # a klog key (klog says if it is not one)
            elif name in defaults and _same(value, defaults[name]):
                held[name] = value             # kafka-python's default: changes nothing
            else:
                raise KafkaConfigurationError("%s(path=...): %s=%r is refused: %s" % (who, name, value, why))
    return to_klog, mine, held


def _same(a, b):
    try:
        return a is b or a == b
    except Exception:   # noqa: BLE001 - incomparable: not the default
        return False
