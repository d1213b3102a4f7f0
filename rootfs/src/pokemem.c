/*
 * pokemem - flip bits of one byte in another process's memory.
 *
 * Usage: pokemem PID ADDR [XOR]
 *   PID   target process id
 *   ADDR  virtual address in the target (hex with 0x prefix, or decimal)
 *   XOR   value XORed into the byte, 0..255 (0x.. or decimal, default 0xff)
 *
 * Reads the byte at ADDR through /proc/PID/mem, writes it back XORed and
 * prints "pokemem: pid P addr 0x.. 0xAA -> 0xBB".  Used to inject a
 * corruption into a running dupalloc child; a write to a KSM-merged page
 * breaks COW, so only the target process sees the change.
 * Needs ptrace access to the target (e.g. root).
 * Exit status: 0 ok, 1 runtime error, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pokemem PID ADDR [XOR]\n"
		"XOR the byte at address ADDR of process PID with XOR (default 0xff)\n"
		"via /proc/PID/mem.  ADDR and XOR accept 0x-prefixed hex or decimal.\n"
		"  --help   show this help\n");
}

/* Parse decimal or 0x-hex unsigned number no larger than max. */
static unsigned long long parse_num(const char *what, const char *s, unsigned long long max)
{
	int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
	const char *digits = base == 16 ? s + 2 : s;
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(digits, &end, base);
	if (end == digits || *end || errno || v > max ||
	    !((*digits >= '0' && *digits <= '9') || (base == 16 && strchr("abcdefABCDEF", *digits)))) {
		fprintf(stderr, "pokemem: invalid %s '%s' (expected 0..%llu, decimal or 0x hex)\n"
			"Try 'pokemem --help'.\n", what, s, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "Try 'pokemem --help'.\n");
		return 2;
	}
	argc -= optind;
	argv += optind;
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "pokemem: expected PID ADDR [XOR]\nTry 'pokemem --help'.\n");
		return 2;
	}

	char *end;
	errno = 0;
	long pid = strtol(argv[0], &end, 10);
	if (end == argv[0] || *end || errno || pid < 1 || pid > 0x3fffffff) {
		fprintf(stderr, "pokemem: invalid PID '%s'\nTry 'pokemem --help'.\n", argv[0]);
		return 2;
	}
	unsigned long long addr = parse_num("ADDR", argv[1], 0x7fffffffffffffffULL);
	unsigned char x = argc == 3 ? (unsigned char)parse_num("XOR", argv[2], 255) : 0xff;

	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/mem", pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "pokemem: open %s: %s\n", path, strerror(errno));
		return 1;
	}

	unsigned char before, after;
	ssize_t n = pread(fd, &before, 1, (off_t)addr);
	if (n != 1) {
		fprintf(stderr, "pokemem: read pid %ld addr 0x%llx: %s\n", pid, addr,
			n < 0 ? strerror(errno) : "short read");
		return 1;
	}
	after = before ^ x;
	n = pwrite(fd, &after, 1, (off_t)addr);
	if (n != 1) {
		fprintf(stderr, "pokemem: write pid %ld addr 0x%llx: %s\n", pid, addr,
			n < 0 ? strerror(errno) : "short write");
		return 1;
	}
	close(fd);
	printf("pokemem: pid %ld addr 0x%llx 0x%02x -> 0x%02x\n", pid, addr, before, after);
	return 0;
}
