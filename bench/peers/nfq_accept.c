/*
 * The floor of what NFQUEUE costs: a minimal consumer built on
 * libnetfilter_queue that accepts every packet with one verdict per packet.
 * It prints the number of packets it has accepted once a second.
 * Build: cc -O2 nfq_accept.c -lnetfilter_queue -lnfnetlink -o nfq_accept
 * Usage: nfq_accept QUEUE [COPY_RANGE]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static volatile sig_atomic_t stop;
static unsigned long long accepted;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int callback(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
  (void)msg; (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  accepted++;
  return nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL);
}

int main(int argc, char **argv) {
  int queue = argc > 1 ? atoi(argv[1]) : 0;
  int range = argc > 2 ? atoi(argv[2]) : 256;
  struct nfq_handle *h = nfq_open();
  if (!h) { perror("nfq_open"); return 1; }
  struct nfq_q_handle *qh = nfq_create_queue(h, queue, &callback, NULL);
  if (!qh) { perror("nfq_create_queue"); return 1; }
  nfq_set_mode(qh, NFQNL_COPY_PACKET, range);
  nfq_set_queue_maxlen(qh, 4096);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 8 << 20);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int fd = nfq_fd(h);
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[65536] __attribute__((aligned));
  time_t last = time(NULL);
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    int n = recv(fd, buf, sizeof(buf), 0);
    if (n >= 0) nfq_handle_packet(h, buf, n);
    time_t now = time(NULL);
    if (now != last) { last = now; printf("%llu\n", accepted); fflush(stdout); }
  }
  printf("%llu\n", accepted);
  nfq_destroy_queue(qh);
  nfq_close(h);
  return 0;
}
