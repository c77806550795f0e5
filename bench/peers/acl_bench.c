/*
 * DPDK rte_acl on a ClassBench rule set and a header trace, for side-by-side
 * figures in `npm run bench` (bench/rteacl.ts builds and runs it when Debian's
 * dpdk-dev is installed). First match wins: rule i gets priority N - i and
 * userdata i + 1.
 *
 * Usage: acl_bench RULES TUPLES[,TUPLES...] OUT [EAL args...]
 *   RULES   ClassBench rules file
 *   TUPLES  binary traces: 5 little-endian u32 per header (src dst sport dport proto)
 *   OUT     binary results, OUT.0, OUT.1, ... one per trace: one i32 per header, the 0-based rule or -1
 * Prints one JSON line: {"rules":N,"build_ms":B,"runs":[{"packets":P,"ns_per_packet":X},...]}.
 * Run with --log-level=lib.acl:debug, DPDK logs the context's runtime memory
 * ("total: N bytes") on stderr; bench/rteacl.ts reads it from there.
 * Build: cc -O2 acl_bench.c $(pkg-config --cflags --libs libdpdk) -o acl_bench
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_acl.h>
#include <rte_eal.h>

enum { F_PROTO, F_SRC, F_DST, F_SPORT, F_DPORT, NUM_FIELDS };

struct header {
  uint8_t proto;
  uint8_t pad[3];
  uint32_t src, dst;
  uint16_t sport, dport;
} __attribute__((packed));

static struct rte_acl_field_def defs[NUM_FIELDS] = {
    {.type = RTE_ACL_FIELD_TYPE_BITMASK, .size = sizeof(uint8_t), .field_index = F_PROTO, .input_index = 0,
     .offset = offsetof(struct header, proto)},
    {.type = RTE_ACL_FIELD_TYPE_MASK, .size = sizeof(uint32_t), .field_index = F_SRC, .input_index = 1,
     .offset = offsetof(struct header, src)},
    {.type = RTE_ACL_FIELD_TYPE_MASK, .size = sizeof(uint32_t), .field_index = F_DST, .input_index = 2,
     .offset = offsetof(struct header, dst)},
    {.type = RTE_ACL_FIELD_TYPE_RANGE, .size = sizeof(uint16_t), .field_index = F_SPORT, .input_index = 3,
     .offset = offsetof(struct header, sport)},
    {.type = RTE_ACL_FIELD_TYPE_RANGE, .size = sizeof(uint16_t), .field_index = F_DPORT, .input_index = 3,
     .offset = offsetof(struct header, dport)},
};

RTE_ACL_RULE_DEF(acl_rule, NUM_FIELDS);

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int parse_prefix(const char *s, uint32_t *addr, uint32_t *len) {
  unsigned a, b, c, d, l;
  if (sscanf(s, "%u.%u.%u.%u/%u", &a, &b, &c, &d, &l) != 5 || l > 32) return -1;
  *addr = a << 24 | b << 16 | c << 8 | d;
  *len = l;
  return 0;
}

// Classify one trace five times (batches of 64), write the results of the
// last pass to `out`, and print its JSON object (best pass).
static int run_trace(const struct rte_acl_ctx *ctx, const char *tuples_file, const char *out_file, int k) {
  FILE *t = fopen(tuples_file, "rb");
  if (!t) { perror(tuples_file); return 1; }
  fseek(t, 0, SEEK_END);
  size_t count = ftell(t) / 20;
  fseek(t, 0, SEEK_SET);
  uint32_t *tuples = malloc(count * 20);
  if (fread(tuples, 20, count, t) != count) { fprintf(stderr, "short trace\n"); return 1; }
  fclose(t);
  struct header *headers = calloc(count, sizeof(*headers));
  const uint8_t **ptrs = malloc(count * sizeof(*ptrs));
  for (size_t i = 0; i < count; i++) {
    headers[i].src = htonl(tuples[5 * i]);
    headers[i].dst = htonl(tuples[5 * i + 1]);
    headers[i].sport = htons((uint16_t)tuples[5 * i + 2]);
    headers[i].dport = htons((uint16_t)tuples[5 * i + 3]);
    headers[i].proto = (uint8_t)tuples[5 * i + 4];
    ptrs[i] = (const uint8_t *)&headers[i];
  }
  uint32_t *results = malloc(count * sizeof(uint32_t));
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    double s = now_ns();
    for (size_t i = 0; i < count; i += 64) {
      uint32_t num = (uint32_t)(count - i < 64 ? count - i : 64);
      rte_acl_classify(ctx, ptrs + i, results + i, num, 1);
    }
    double e = now_ns() - s;
    if (e < best) best = e;
  }
  FILE *o = fopen(out_file, "wb");
  if (!o) { perror(out_file); return 1; }
  for (size_t i = 0; i < count; i++) {
    int32_t r = results[i] ? (int32_t)results[i] - 1 : -1;
    fwrite(&r, 4, 1, o);
  }
  fclose(o);
  printf("%s{\"packets\":%zu,\"ns_per_packet\":%.1f}", k ? "," : "", count, best / count);
  free(tuples);
  free(headers);
  free(ptrs);
  free(results);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: acl_bench RULES TUPLES OUT [EAL args...]\n");
    return 2;
  }
  const char *rules_file = argv[1], *tuples_file = argv[2], *out_file = argv[3];
  char *eal[32] = {"acl_bench"};
  int nargs = 1;
  for (int i = 4; i < argc && nargs < 31; i++) eal[nargs++] = argv[i];
  if (rte_eal_init(nargs, eal) < 0) {
    fprintf(stderr, "rte_eal_init failed\n");
    return 1;
  }
  FILE *f = fopen(rules_file, "r");
  if (!f) { perror(rules_file); return 1; }
  size_t cap = 1024, n = 0;
  struct acl_rule *rules = calloc(cap, sizeof(*rules));
  char line[512];
  while (fgets(line, sizeof(line), f)) {
    char src[64], dst[64];
    unsigned slo, shi, dlo, dhi, proto, pmask;
    if (sscanf(line, "@%63s %63s %u : %u %u : %u %x/%x", src, dst, &slo, &shi, &dlo, &dhi, &proto, &pmask) != 8) continue;
    if (n == cap) { cap *= 2; rules = realloc(rules, cap * sizeof(*rules)); }
    struct acl_rule *r = &rules[n];
    memset(r, 0, sizeof(*r));
    uint32_t a, l;
    if (parse_prefix(src, &a, &l)) continue;
    r->field[F_SRC].value.u32 = a; r->field[F_SRC].mask_range.u32 = l;
    if (parse_prefix(dst, &a, &l)) continue;
    r->field[F_DST].value.u32 = a; r->field[F_DST].mask_range.u32 = l;
    r->field[F_SPORT].value.u16 = slo; r->field[F_SPORT].mask_range.u16 = shi;
    r->field[F_DPORT].value.u16 = dlo; r->field[F_DPORT].mask_range.u16 = dhi;
    r->field[F_PROTO].value.u8 = proto; r->field[F_PROTO].mask_range.u8 = pmask;
    n++;
  }
  fclose(f);
  for (size_t i = 0; i < n; i++) {
    rules[i].data.category_mask = 1;
    rules[i].data.priority = (int32_t)(n - i);
    rules[i].data.userdata = (uint32_t)(i + 1);
  }
  double t0 = now_ns();
  struct rte_acl_param prm = {.name = "nfsieve-bench", .socket_id = SOCKET_ID_ANY, .rule_size = RTE_ACL_RULE_SZ(NUM_FIELDS),
                              .max_rule_num = (uint32_t)n};
  struct rte_acl_ctx *ctx = rte_acl_create(&prm);
  if (!ctx || rte_acl_add_rules(ctx, (const struct rte_acl_rule *)rules, (uint32_t)n) != 0) {
    fprintf(stderr, "rte_acl_create/add_rules failed\n");
    return 1;
  }
  struct rte_acl_config cfg = {.num_categories = 1, .num_fields = NUM_FIELDS};
  memcpy(cfg.defs, defs, sizeof(defs));
  if (rte_acl_build(ctx, &cfg) != 0) {
    fprintf(stderr, "rte_acl_build failed\n");
    return 1;
  }
  double build_ms = (now_ns() - t0) / 1e6;
  printf("{\"rules\":%zu,\"build_ms\":%.1f,\"runs\":[", n, build_ms);
  char *list = strdup(tuples_file), *save = NULL;
  int k = 0;
  for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save), k++) {
    char out[4096];
    snprintf(out, sizeof(out), "%s.%d", out_file, k);
    if (run_trace(ctx, name, out, k) != 0) return 1;
  }
  printf("]}\n");
  rte_acl_free(ctx);
  rte_eal_cleanup();
  return 0;
}
