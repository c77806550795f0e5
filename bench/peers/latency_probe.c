/*
 * The NFQUEUE bench's latency probe: a UDP listener that reads, for every
 * datagram, the kernel's receive timestamp (SO_TIMESTAMPNS: taken when the
 * frame entered the stack on the veth, before PREROUTING and its queue) and
 * the clock when the datagram reaches user space. The difference is the
 * time spent queued for a verdict plus the path after it and this listener's
 * own wake-up, which is the same for every consumer: compare runs, not
 * absolute values.
 * Build: cc -O2 latency_probe.c -o latency_probe
 * Usage: latency_probe PORT   (prints "ready"; on SIGTERM one JSON line:
 *        {"count":N,"p50":US,"p99":US,"max":US})
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 22)
#define RCVBUF_BYTES (8 << 20)
#define WAKE_US 100000

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double at(const double *v, size_t n, double q) { return n ? v[(size_t)(q * (double)(n - 1))] : 0; }

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 500;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1, size = RCVBUF_BYTES;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  struct timeval tv = {0, WAKE_US};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("bind"); return 1; }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  double *samples = malloc(sizeof(double) * MAX_SAMPLES);
  size_t n = 0;
  printf("ready\n");
  fflush(stdout);
  char buf[2048], control[256];
  while (!stop) {
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    if (recvmsg(fd, &m, 0) < 0) continue;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_TIMESTAMPNS || n >= MAX_SAMPLES) continue;
      struct timespec t;
      memcpy(&t, CMSG_DATA(c), sizeof(t));
      samples[n++] = (double)(now.tv_sec - t.tv_sec) * 1e6 + (double)(now.tv_nsec - t.tv_nsec) / 1e3;
    }
  }
  qsort(samples, n, sizeof(double), by_value);
  printf("{\"count\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}\n", n, at(samples, n, 0.5), at(samples, n, 0.99), n ? samples[n - 1] : 0);
  return 0;
}
