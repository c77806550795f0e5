/*
 * The benchmarks' paced sender: every frame of a pcap file, round and round,
 * out of an interface (AF_PACKET) at a fixed rate for a number of seconds, on
 * one socket (test/support/send-frames.js opens one per call, and closing an
 * AF_PACKET socket waits for an RCU grace period, some 10-20 ms, too coarse
 * to pace by). The rate is kept by the clock: frames due are sent, then a
 * 20 µs sleep. RATE 0 sends as fast as the socket takes them.
 * Build: cc -O2 paced_send.c -o paced_send
 * Usage: paced_send IFNAME PCAP RATE SECONDS   (prints the number sent)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PCAP_HEADER 24
#define PCAP_RECORD 16
#define MAX_FRAMES 4096
#define MAX_FRAME 65535
#define SLEEP_NS 20000L
#define ENOBUFS_WAIT_US 20

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Frames of a little-endian pcap file (what src/capture/pcap.ts writes); returns the count, -1 on error. */
static int read_pcap(const char *file, unsigned char **frames, uint32_t *lengths) {
  FILE *f = fopen(file, "rb");
  if (!f) { perror(file); return -1; }
  unsigned char head[PCAP_HEADER];
  if (fread(head, 1, PCAP_HEADER, f) != PCAP_HEADER) { fclose(f); return -1; }
  int n = 0;
  unsigned char rec[PCAP_RECORD];
  while (n < MAX_FRAMES && fread(rec, 1, PCAP_RECORD, f) == PCAP_RECORD) {
    uint32_t len = (uint32_t)rec[8] | (uint32_t)rec[9] << 8 | (uint32_t)rec[10] << 16 | (uint32_t)rec[11] << 24;
    if (len > MAX_FRAME) break;
    frames[n] = malloc(len ? len : 1);
    if (!frames[n] || fread(frames[n], 1, len, f) != len) break;
    lengths[n++] = len;
  }
  fclose(f);
  return n;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: paced_send IFNAME PCAP RATE SECONDS\n"); return 2; }
  static unsigned char *frames[MAX_FRAMES];
  static uint32_t lengths[MAX_FRAMES];
  int n = read_pcap(argv[2], frames, lengths);
  if (n <= 0) { fprintf(stderr, "%s: no frames\n", argv[2]); return 1; }
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_ll to;
  memset(&to, 0, sizeof(to));
  to.sll_family = AF_PACKET;
  to.sll_ifindex = (int)if_nametoindex(argv[1]);
  to.sll_halen = ETH_ALEN;
  if (to.sll_ifindex == 0) { fprintf(stderr, "no interface %s\n", argv[1]); return 1; }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  unsigned long long sent = 0;
  double start = now_s();
  struct timespec pause = {0, SLEEP_NS};
  for (int i = 0; !stop; i = (i + 1) % n) {
    double elapsed = now_s() - start;
    if (elapsed >= seconds) break;
    if (rate > 0 && (double)sent >= rate * elapsed) { nanosleep(&pause, NULL); i = (i + n - 1) % n; continue; }
    memcpy(to.sll_addr, frames[i], ETH_ALEN);
    if (sendto(fd, frames[i], lengths[i], 0, (struct sockaddr *)&to, sizeof(to)) >= 0) sent++;
    else if (errno == ENOBUFS || errno == EAGAIN) { usleep(ENOBUFS_WAIT_US); i = (i + n - 1) % n; }
    else { perror("sendto"); break; }
  }
  printf("%llu\n", sent);
  close(fd);
  return 0;
}
