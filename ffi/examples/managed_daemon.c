/* The managed layer against a real `meshlink` daemon (scripts/ffi-py-test.sh starts it,
 * with `meshlink serve svc.echo --echo` answering on its side).
 * Usage: managed_daemon tcp://127.0.0.1:PORT. Exit 0 when connect, send, request and
 * quality all succeed. */
#include <stdio.h>
#include <string.h>
#include "meshlink.h"

#define CHECK(call)                                                                   \
    do {                                                                              \
        MeshlinkResult r_ = (call);                                                   \
        if (r_ != MESHLINK_RESULT_OK) {                                               \
            fprintf(stderr, "%s: %s\n", #call, meshlink_result_message((uint32_t)r_)); \
            goto fail;                                                                \
        }                                                                             \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s tcp://HOST:PORT\n", argv[0]);
        return 2;
    }
    MeshlinkConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.event_capacity = 64;
    MeshlinkNode *node = NULL;
    CHECK(meshlink_node_new(&cfg, &node));

    MeshlinkPeerInfo peer;
    CHECK(meshlink_node_connect(node, argv[1], NULL, &peer));
    printf("connected to %s (%s)\n", (const char *)peer.addr, (const char *)peer.name);

    const char *hello = "hello from C";
    CHECK(meshlink_node_send(node, &peer.peer, (const uint8_t *)hello, strlen(hello)));

    uint8_t answer[256];
    size_t answer_len = 0;
    CHECK(meshlink_node_request(node, &peer.peer, "svc.echo", (const uint8_t *)"ping", 4, 5000, answer,
                                sizeof answer, &answer_len));
    if (answer_len != 4 || memcmp(answer, "ping", 4) != 0) {
        fprintf(stderr, "echo answered %zu bytes, not ping\n", answer_len);
        goto fail;
    }
    printf("request svc.echo: %.*s\n", (int)answer_len, (const char *)answer);

    /* Too small a buffer: the needed size comes back, nothing else. */
    size_t need = 0;
    if (meshlink_node_request(node, &peer.peer, "svc.echo", (const uint8_t *)"pingpong", 8, 5000, answer, 2,
                              &need) != MESHLINK_RESULT_BUFFER_TOO_SMALL || need != 8) {
        fprintf(stderr, "BUFFER_TOO_SMALL expected with need 8, got %zu\n", need);
        goto fail;
    }

    MeshlinkQuality q;
    CHECK(meshlink_node_quality(node, &peer.peer, &q));
    printf("quality: rtt %llu us (measured %d), loss %.2f, score %.2f\n", (unsigned long long)q.rtt_us, q.has_rtt,
           q.loss, q.score);

    size_t n = 0;
    MeshlinkPeerInfo peers[4];
    CHECK(meshlink_node_peers(node, peers, 4, &n));
    if (n != 1) {
        fprintf(stderr, "expected 1 peer, got %zu\n", n);
        goto fail;
    }

    MeshlinkEvent ev;
    uint8_t buf[64];
    while (meshlink_node_poll_event(node, 0, &ev, buf, sizeof buf) == MESHLINK_RESULT_OK) {
        printf("event kind %d\n", (int)ev.kind);
    }
    CHECK(meshlink_node_disconnect(node, &peer.peer));
    CHECK(meshlink_node_stop(node));
    meshlink_node_free(node);
    meshlink_node_free(NULL);
    printf("ok\n");
    return 0;
fail:
    meshlink_node_free(node);
    return 1;
}
