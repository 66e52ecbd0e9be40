/*
 * test/server/srv_native.c - for test_groups_clients.py: serve a data
 * directory to Kafka clients and, in the same process, run a native klog
 * consumer that the test drives line by line on stdin.
 *
 *   srv_native DIR     prints "url tcp://127.0.0.1:PORT" once it serves
 *
 * Commands (one answer line each; "err NAME" on failure):
 *   topic NAME N            create a topic of N partitions        -> ok
 *   sub GROUP TOPIC         a klog consumer in GROUP on TOPIC     -> ok
 *   assignment              its partitions of the last poll       -> assign P P ...
 *   records                 records it has received               -> records N
 *   commit TOPIC P OFFSET   commit as the member (synchronous)    -> ok
 *   committed TOPIC P       the group's committed offset          -> offset N
 *   close                   close the consumer (leaves the group) -> ok
 *   quit                    stop serving, close the directory, exit 0
 * Between commands the consumer polls every 10 ms (its heartbeat rides on
 * its polls).  The process exits by itself after 5 minutes, or when stdin
 * closes.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/server.h>

#define LIFETIME_S 300

static klog *k;
static klog_consumer *cons;
static long nrecords;

static void answer_rc(int rc)
{
    if (rc < 0)
        printf("err %s\n", klog_err_name(rc));
    else
        printf("ok\n");
}

static void assignment(void)
{
    klog_partition_list *l = NULL;
    if (!cons || klog_consumer_assignment(cons, &l) < 0) {
        printf("assign\n");
        return;
    }
    int seen[1024] = { 0 };
    for (size_t i = 0; i < klog_partition_list_count(l); i++) {
        int32_t p;
        if (klog_partition_list_get(l, i, NULL, &p, NULL, NULL, NULL) == 0 && p >= 0 && p < 1024)
            seen[p] = 1;
    }
    klog_partition_list_free(l);
    printf("assign");
    for (int p = 0; p < 1024; p++)
        if (seen[p])
            printf(" %d", p);
    printf("\n");
}

static void command(char *line)
{
    char a[256], b[256];
    long long x, y;
    if (sscanf(line, "topic %255s %lld", a, &x) == 2) {
        answer_rc(klog_topic_create(k, a, (int)x, NULL, NULL, 0));
    } else if (sscanf(line, "sub %255s %255s", a, b) == 2) {
        klog_conf *conf;
        char eb[256];
        int rc = klog_conf_new(&conf);
        if (rc == 0)
            rc = klog_conf_set(conf, "group.id", a, eb, sizeof eb);
        if (rc == 0)
            rc = klog_conf_set(conf, "client.id", "native", eb, sizeof eb);
        if (rc == 0)
            rc = klog_conf_set(conf, "auto.offset.reset", "earliest", eb, sizeof eb);
        if (rc == 0)
            rc = klog_conf_set(conf, "enable.auto.commit", "false", eb, sizeof eb);
        if (rc == 0)
            rc = klog_consumer_new(k, conf, &cons, eb, sizeof eb);
        klog_conf_free(conf);
        const char *topics[1] = { b };
        if (rc == 0)
            rc = klog_consumer_subscribe(cons, topics, 1);
        answer_rc(rc);
    } else if (!strcmp(line, "assignment")) {
        assignment();
    } else if (!strcmp(line, "records")) {
        printf("records %ld\n", nrecords);
    } else if (sscanf(line, "commit %255s %lld %lld", a, &x, &y) == 3) {
        klog_partition_list *l;
        int rc = klog_partition_list_new(&l);
        if (rc == 0)
            rc = klog_partition_list_add(l, a, (int32_t)x, y, "native");
        if (rc == 0)
            rc = cons ? klog_consumer_commit(cons, l, 0) : KLOG_ESTATE;
        klog_partition_list_free(l);
        answer_rc(rc);
    } else if (sscanf(line, "committed %255s %lld", a, &x) == 2) {
        int64_t off = -1;
        int rc = cons ? klog_consumer_committed(cons, a, (int32_t)x, &off, NULL, 0) : KLOG_ESTATE;
        if (rc < 0)
            answer_rc(rc);
        else
            printf("offset %lld\n", (long long)off);
    } else if (!strcmp(line, "close")) {
        int rc = cons ? klog_consumer_close(cons) : KLOG_ESTATE;
        cons = NULL;
        answer_rc(rc);
    } else {
        printf("err unknown command\n");
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: srv_native DIR\n");
        return 2;
    }
    char eb[256];
    int rc = klog_open(&k, argv[1], NULL, eb, sizeof eb);
    if (rc < 0) {
        fprintf(stderr, "klog_open: %s\n", eb);
        return 1;
    }
    klog_server *s;
    if ((rc = klog_server_new(&s, k, NULL, eb, sizeof eb)) < 0 || (rc = klog_server_listen(s, "tcp://127.0.0.1:0")) < 0 ||
        (rc = klog_server_start(s)) < 0) {
        fprintf(stderr, "server: %s\n", klog_strerror(rc));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("url %s\n", klog_server_listener_url(s, 0));
    time_t end = time(NULL) + LIFETIME_S;
    char buf[4096];
    size_t have = 0;
    bool quit = false;
    while (!quit && time(NULL) < end) {
        if (cons) {
            const klog_message *const *msgs;
            int n = klog_consumer_poll(cons, 0, &msgs);
            if (n > 0)
                nrecords += n;
        }
        struct pollfd pfd = { 0, POLLIN, 0 };
        if (poll(&pfd, 1, 10) <= 0)
            continue;
        ssize_t r = read(0, buf + have, sizeof buf - 1 - have);
        if (r <= 0)
            break; /* the test went away */
        have += (size_t)r;
        buf[have] = '\0';
        char *nl;
        while (!quit && (nl = strchr(buf, '\n'))) {
            *nl = '\0';
            if (!strcmp(buf, "quit"))
                quit = true;
            else
                command(buf);
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have - used + 1);
            have -= used;
        }
        if (have == sizeof buf - 1)
            have = 0; /* a line too long: dropped */
    }
    if (cons)
        klog_consumer_close(cons);
    klog_server_free(s);
    return klog_close(k) < 0 ? 1 : 0;
}
