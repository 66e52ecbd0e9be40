/*
 * examples/kafka_server.c - serve a klog data directory to Kafka clients
 * and read what they produce, in the same process.
 *
 *   kafka_server [-t TOPIC] [-g GROUP] DIR [HOST:PORT]
 *
 * Opens DIR (creating it), creates TOPIC ("greetings") if it does not
 * exist, and serves the instance over the Kafka wire protocol on HOST:PORT
 * (default 127.0.0.1:9092; port 0 takes a free one) with klog_server_*.
 * Then, while kcat, librdkafka, kafka-python or any other Kafka client
 * produces to it, a consumer of the public API, a member of the consumer
 * group GROUP ("kafka-server-example"), reads TOPIC in-process and prints
 * each record:
 *
 *   kafka_server: listening on tcp://127.0.0.1:9092
 *   greetings/0@0 hello
 *   greetings/0@1 key=ada hello, ada
 *
 * The group's committed offsets are in the instance's __consumer_offsets,
 * the same ones Kafka clients of the group use (OffsetFetch): a restart
 * resumes after the last record printed, and a Kafka consumer joining
 * GROUP shares TOPIC's partitions with this one.
 *
 * Stops cleanly on SIGINT or SIGTERM: the consumer leaves its group
 * (committing its position), the server closes every connection, the
 * instance is closed.  Exit status 0; 1 on an error; 2 for a usage error.
 *
 * Only the public API (<klog/klog.h>, <klog/server.h>) is used.  Build:
 *   cc kafka_server.c $(pkg-config --cflags --libs klog) -o kafka_server
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/server.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: kafka_server [-t TOPIC] [-g GROUP] DIR [HOST:PORT]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *topic = "greetings", *group = "kafka-server-example";
    char err[512] = "", url[300];
    klog *k = NULL;
    klog_server *srv = NULL;
    klog_conf *cc = NULL;
    klog_consumer *c = NULL;
    const klog_message *const *msgs;
    int opt, rc;

    while ((opt = getopt(argc, argv, "t:g:h")) != -1) {
        switch (opt) {
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        default: return usage();
        }
    }
    if (optind >= argc || argc - optind > 2)
        return usage();
    const char *dir = argv[optind];
    snprintf(url, sizeof url, "tcp://%s", optind + 1 < argc ? argv[optind + 1] : "127.0.0.1:9092");

    /* klog's threads (the instance's and the server's) inherit the signal
     * mask of the thread that starts them: block SIGINT and SIGTERM while
     * they start, so that only this thread takes them. */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The instance, and the topic (0 partitions: num.partitions, 1). */
    if ((rc = klog_open(&k, dir, NULL, err, sizeof err)) < 0)
        goto fail;
    rc = klog_topic_create(k, topic, 0, NULL, err, sizeof err);
    if (rc < 0 && rc != -EEXIST)
        goto fail;

    /* The server: its configuration is the instance's (NULL), so
     * auto.create.topics.enable=true lets clients create other topics by
     * producing to them.  It listens, then serves from its own threads. */
    if ((rc = klog_server_new(&srv, k, NULL, err, sizeof err)) < 0)
        goto fail;
    if ((rc = klog_server_listen(srv, url)) < 0) {
        snprintf(err, sizeof err, "listening on %s", url);
        goto fail;
    }
    if ((rc = klog_server_start(srv)) < 0)
        goto fail;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* The bound address (port 0 resolved), as `klog serve` prints it. */
    printf("kafka_server: listening on %s\n", klog_server_listener_url(srv, 0));
    fflush(stdout);

    /* A group member of our own, in-process, beside the Kafka clients. */
    if ((rc = klog_conf_new(&cc)) < 0 ||
        (rc = klog_conf_set(cc, "group.id", group, err, sizeof err)) < 0 ||
        (rc = klog_conf_set(cc, "auto.offset.reset", "earliest", err, sizeof err)) < 0 ||
        (rc = klog_consumer_new(k, cc, &c, err, sizeof err)) < 0 ||
        (rc = klog_consumer_subscribe(c, &topic, 1)) < 0)
        goto fail;

    /* Print what arrives until a signal.  A signal interrupts a waiting
     * poll (it returns 0 or -EINTR); the timeout bounds the wait anyway. */
    while (!stop) {
        int n = klog_consumer_poll(c, 500, &msgs);
        if (n == -EINTR)
            continue;
        if (n < 0) {
            rc = n;
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            const klog_message *m = msgs[i];
            printf("%s/%" PRId32 "@%" PRId64 " ", m->topic, m->partition, m->offset);
            if (m->key)
                printf("key=%.*s ", (int)m->key_len, (const char *)m->key);
            printf("%.*s\n", (int)m->value_len, m->value ? (const char *)m->value : "");
        }
        if (n > 0)
            fflush(stdout);
    }

    /* Leave the group (auto-commit commits the position first), stop
     * serving, close. */
    klog_consumer_close(c);
    klog_conf_free(cc);
    klog_server_free(srv);
    if ((rc = klog_close(k)) < 0) {
        fprintf(stderr, "kafka_server: closing %s: %s\n", dir, klog_strerror(rc));
        return 1;
    }
    return 0;

fail:
    fprintf(stderr, "kafka_server: %s%s%s\n", klog_strerror(rc), err[0] ? ": " : "", err);
    klog_consumer_close(c); /* all NULL-safe */
    klog_conf_free(cc);
    klog_server_free(srv);
    klog_close(k);
    return 1;
}
