/* Unit tests of the ZooKeeper payload codecs (ha/payload.h): round trips, every kind of
 * corruption refused with a reason, field limits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/envelope.h"
#include "ha/payload.h"
#include "unit.h"

static void test_candidate_round_trip(void) {
        struct ha_candidate_info c = {.id = "coord-1", .host = "h1", .rpc = "h1:6123",
                                      .rest = "http://h1:8081",
                                      .token = "0123456789abcdef0123456789abcdef"};
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(ha_candidate_encode(&c, &data, &len), 0);
        struct ha_candidate_info d;
        char err[256] = "";
        CHECK_INT(ha_candidate_decode(data, len, &d, err, sizeof(err)), 0);
        CHECK_STR(d.id, "coord-1");
        CHECK_STR(d.host, "h1");
        CHECK_STR(d.rpc, "h1:6123");
        CHECK_STR(d.rest, "http://h1:8081");
        CHECK_STR(d.token, c.token);
        free(data);
}

static void test_leader_round_trip_and_kind_checked(void) {
        struct ha_leader_info l = {.epoch = 42, .id = "c2", .rpc = "r", .rest = "",
                                   .session_id = 0x0123456789abcdefLL};
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(ha_leader_encode(&l, &data, &len), 0);
        struct ha_leader_info d = {0};
        CHECK_INT(ha_leader_decode(data, len, &d, NULL, 0), 0);
        CHECK_INT(d.epoch, 42);
        CHECK_INT(d.session_id, 0x0123456789abcdefLL);
        CHECK_STR(d.id, "c2");
        CHECK_STR(d.rest, "");
        /* a leader payload is not a candidate payload */
        struct ha_candidate_info c;
        char err[256] = "";
        CHECK_INT(ha_candidate_decode(data, len, &c, err, sizeof(err)), -EMEDIUMTYPE);
        CHECK_CONTAINS(err, "flinc.ha.leader");
        free(data);
}

static void test_u64_kinds(void) {
        char *data = NULL;
        size_t len = 0;
        uint64_t v = 0;
        CHECK_INT(ha_u64_encode(HA_KIND_EPOCH, UINT64_MAX - 1, &data, &len), 0);
        CHECK_INT(ha_u64_decode(HA_KIND_EPOCH, data, len, &v, NULL, 0), 0);
        CHECK(v == UINT64_MAX - 1, "epoch round trip: %llu", (unsigned long long)v);
        CHECK_INT(ha_u64_decode(HA_KIND_COUNTER, data, len, &v, NULL, 0), -EMEDIUMTYPE);
        free(data);
        CHECK_INT(ha_u64_encode(HA_KIND_COUNTER, 7, &data, &len), 0);
        CHECK_INT(ha_u64_decode(HA_KIND_COUNTER, data, len, &v, NULL, 0), 0);
        CHECK_INT(v, 7);
        free(data);
}

static void test_pointer_corruption_is_refused(void) {
        struct ha_pointer p = {.path = "file:///ha/c/jobs/j/graph-1", .size_bytes = 123,
                               .crc = 0xdeadbeef, .id = 9};
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(ha_pointer_encode(HA_KIND_CHECKPOINT, &p, &data, &len), 0);
        struct ha_pointer d;
        CHECK_INT(ha_pointer_decode(HA_KIND_CHECKPOINT, data, len, &d, NULL, 0), 0);
        CHECK_STR(d.path, p.path);
        CHECK_INT(d.size_bytes, 123);
        CHECK_INT(d.crc, 0xdeadbeef);
        CHECK_INT(d.id, 9);
        char err[256];
        /* flip one byte of the body: the CRC catches it */
        data[len - 3] ^= 0x20;
        err[0] = '\0';
        CHECK_INT(ha_pointer_decode(HA_KIND_CHECKPOINT, data, len, &d, err, sizeof(err)), -EBADMSG);
        CHECK_CONTAINS(err, "checksum");
        /* truncated */
        err[0] = '\0';
        CHECK_INT(ha_pointer_decode(HA_KIND_CHECKPOINT, data, len / 2, &d, err, sizeof(err)),
                  -EBADMSG);
        CHECK(err[0] != '\0', "a reason is given");
        /* garbage and empty */
        CHECK_INT(ha_pointer_decode(HA_KIND_POINTER, "\x81\xa4kind\xa3" "bad", 10, &d, NULL, 0),
                  -EBADMSG);
        CHECK_INT(ha_pointer_decode(HA_KIND_POINTER, "", 0, &d, NULL, 0), -EBADMSG);
        free(data);
}

static void test_missing_field_is_named(void) {
        /* a well-formed envelope whose body lacks "crc" */
        const char body[] = "\x82\xa4path\xa1x\xa4size\x01";
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(envelope_wrap(HA_KIND_POINTER, 1, body, sizeof(body) - 1, &data, &len), 0);
        struct ha_pointer d;
        char err[256] = "";
        CHECK_INT(ha_pointer_decode(HA_KIND_POINTER, data, len, &d, err, sizeof(err)), -EBADMSG);
        CHECK_CONTAINS(err, "'crc' is missing");
        free(data);
}

static void test_job_result_and_limits(void) {
        struct ha_job_result r = {.job = "j1", .state = HA_JOB_CANCELED, .end_time_ms = -5,
                                  .epoch = 3};
        char *data = NULL;
        size_t len = 0;
        CHECK_INT(ha_job_result_encode(&r, &data, &len), 0);
        struct ha_job_result d;
        CHECK_INT(ha_job_result_decode(data, len, &d, NULL, 0), 0);
        CHECK_STR(d.job, "j1");
        CHECK_INT(d.state, HA_JOB_CANCELED);
        CHECK_INT(d.end_time_ms, -5);
        CHECK_INT(d.epoch, 3);
        free(data);
        enum ha_job_state s;
        CHECK_INT(ha_job_state_parse("finished", &s), 0);
        CHECK_INT(s, HA_JOB_FINISHED);
        CHECK_INT(ha_job_state_parse("RUNNING", &s), -EINVAL);
        /* an id that fills its buffer without a terminator is refused */
        struct ha_candidate_info c = {0};
        memset(c.id, 'x', sizeof(c.id));
        CHECK_INT(ha_candidate_encode(&c, &data, &len), -ENAMETOOLONG);
}

int main(void) {
        RUN(test_candidate_round_trip);
        RUN(test_leader_round_trip_and_kind_checked);
        RUN(test_u64_kinds);
        RUN(test_pointer_corruption_is_refused);
        RUN(test_missing_field_is_named);
        RUN(test_job_result_and_limits);
        return unit_done();
}
