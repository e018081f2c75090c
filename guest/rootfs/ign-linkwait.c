/*
 * ign-linkwait: block until a network link may have changed, without polling.
 *
 *   ign-linkwait IF SECONDS CARRIER UPS
 *     -> exit 0 as soon as the kernel announces any link change (an RTM_NEWLINK/RTM_DELLINK
 *        message on a NETLINK_ROUTE socket), or at once if IF's carrier or carrier_up_count
 *        in sysfs can be read and differ from CARRIER or UPS; exit 1 after SECONDS without
 *        either; exit 2 on a usage or socket error (the caller then falls back to a timed
 *        wait).
 *
 * ign-netwatch waited a second per round and read sysfs each time.  On kvm_pvm hosts, where
 * the guest kernel is emulated, that polling was a steady part of an idle guest's host CPU.
 * The socket is subscribed before sysfs is read, so a change between the caller's last read
 * and this call is seen either way.  Any link message wakes the caller, who compares the
 * state itself: a spurious wake-up costs one round.  Built static by guest/rootfs/build.sh.
 */
#define _GNU_SOURCE
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECONDS 86400L

/* The first line of /sys/class/net/IF/NAME, without the newline; "" if unreadable. */
static void read_attr(const char *ifname, const char *name, char *buf, size_t n)
{
	char path[128];
	FILE *f;

	buf[0] = '\0';
	if (snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, name) >= (int)sizeof(path))
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, (int)n, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* 1 if the buffer holds a link message, 0 if not. */
static int has_link_message(const char *buf, ssize_t len)
{
	const struct nlmsghdr *h;

	for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
		if (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
	char carrier[32], ups[32], *end = NULL;
	struct timespec now, deadline;
	long seconds = argc == 5 ? strtol(argv[2], &end, 10) : 0;
	int fd;

	if (argc != 5 || !end || *end || seconds <= 0 || seconds > MAX_SECONDS ||
	    strlen(argv[1]) > 32) {
		fprintf(stderr, "usage: ign-linkwait IF SECONDS(1..%ld) CARRIER UPS\n", MAX_SECONDS);
		return 2;
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("ign-linkwait: netlink socket");
		return 2;
	}
	read_attr(argv[1], "carrier", carrier, sizeof(carrier));
	read_attr(argv[1], "carrier_up_count", ups, sizeof(ups));
	/* An unreadable attribute (the interface down or gone) tells nothing: wait for the
	 * kernel's message, or a caller passing its last values would spin. */
	if ((carrier[0] && strcmp(carrier, argv[3]) != 0) || (ups[0] && strcmp(ups, argv[4]) != 0))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
		long ms;
		ssize_t len;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0)
			return 1;
		if (poll(&p, 1, (int)ms) < 0)
			return 2;
		if (!(p.revents & POLLIN))
			continue;
		len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		/* ENOBUFS: messages were dropped, so something changed. */
		if (len < 0)
			return 0;
		if (has_link_message(buf, len))
			return 0;
	}
}
