#include "util/unix_listen.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int unix_listen(const char *path, int backlog, int mode)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		/* Non-blocking: a live server with a full backlog answers EAGAIN, not a wait. */
		ret = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
		close(fd);
		if (ret == 0 || ret == EAGAIN)
			return -EADDRINUSE; /* somebody is serving there */
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	} else if (errno != ENOENT) {
		return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if ((mode >= 0 && chmod(path, (mode_t)mode) < 0) || listen(fd, backlog) < 0) {
		ret = -errno;
		close(fd);
		unlink(path);
		return ret;
	}
	return fd;
}
