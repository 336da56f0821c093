/*
 * console.c: the relay of a container's terminal (`run -t`, `exec -t`).
 *
 * The container's first process (pid1.c, open_console) opens a new pseudo-terminal
 * from the container's own devpts instance (mounted with newinstance,ptmxmode=0666,
 * devpts(5)), makes the slave its controlling terminal and its 0-2, and passes the
 * master to its supervisor over a unix socket (SCM_RIGHTS), as runc's console
 * socket does. The supervisor (shim.c, or exec_run in pid1.c for `exec -t`) holds
 * the master for as long as the container runs, so that a caller may go and come
 * back (`attach`); it logs what the master gives and sends it to every attached
 * caller. No caller's descriptor ever enters the container: a caller is a
 * SOCK_SEQPACKET connection the supervisor relays, never a terminal it hands on.
 *
 * A caller's messages (message boundaries kept by SOCK_SEQPACKET):
 *   'd' BYTES        input, written to the master (the line discipline does the rest:
 *                    echo, ^C as SIGINT to the foreground process group, termios(3))
 *   'w' "ROWS COLS"  the caller's window size: TIOCSWINSZ on the master, and the
 *                    kernel sends SIGWINCH to the terminal's foreground group (tty_ioctl(4))
 * What the supervisor sends a caller is the master's output, as it comes. At the end
 * (the container's processes have all closed the terminal) it closes the connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "console.h"

#define MESSAGE_BYTES 4096

void console_init(struct console *c)
{
    c->master = -1;
    c->listen_fd = -1;
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        c->clients[i] = -1;
}

int console_add_client(struct console *c, int fd)
{
    /* A caller that stops reading must not stall the container's output for the others. */
    struct timeval second = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &second, sizeof second);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        if (c->clients[i] < 0) {
            c->clients[i] = fd;
            return 0;
        }
    close(fd);
    return -1;
}

/*
 * A unix socket's path is at most 108 bytes (unix(7)); a state root may be deeper. So the
 * socket is bound by a short name reached through the directory's descriptor in
 * /proc/self/fd, and callers connect the same way (labkit/linux/console.py).
 */
int console_listen(struct console *c, const char *dir, const char *name)
{
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dfd, name);
    unlink(addr.sun_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(077); /* only the container's owner may attach: the socket is 0600 from the start */
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 16) == 0;
    int saved = errno;
    umask(old);
    close(dfd);
    if (!ok) {
        if (fd >= 0)
            close(fd);
        errno = saved;
        return -1;
    }
    c->listen_fd = fd;
    return 0;
}

int console_pollfds(const struct console *c, struct pollfd *fds)
{
    int n = 0;
    if (c->listen_fd >= 0)
        fds[n++] = (struct pollfd){c->listen_fd, POLLIN, 0};
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        if (c->clients[i] >= 0)
            fds[n++] = (struct pollfd){c->clients[i], POLLIN, 0};
    return n;
}

static void drop(struct console *c, int fd)
{
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        if (c->clients[i] == fd)
            c->clients[i] = -1;
    close(fd);
}

/* Write input to the master; a terminal whose input queue stays full for a second loses the rest. */
static void to_master(int master, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(master, p, len);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd out = {master, POLLOUT, 0};
            if (poll(&out, 1, 1000) > 0)
                continue;
        }
        return;
    }
}

static void message(struct console *c, int fd)
{
    char buf[MESSAGE_BYTES + 1];
    int attached = 0;
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        attached |= c->clients[i] == fd;
    if (!attached)
        return; /* let go since poll(2) returned (console_broadcast): its descriptor is closed */
    ssize_t n = recv(fd, buf, MESSAGE_BYTES, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(c, fd); /* the caller detached, or went */
        return;
    }
    if (c->master < 0)
        return;
    if (buf[0] == 'd') {
        to_master(c->master, buf + 1, (size_t)n - 1);
    } else if (buf[0] == 'w') {
        buf[n] = '\0';
        unsigned rows = 0, cols = 0;
        if (sscanf(buf + 1, "%u %u", &rows, &cols) == 2 && rows > 0 && cols > 0 && rows < 65536 && cols < 65536) {
            struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(c->master, TIOCSWINSZ, &ws);
        }
    }
}

void console_handle(struct console *c, const struct pollfd *fds, int n)
{
    for (int k = 0; k < n; k++) {
        if (!fds[k].revents)
            continue;
        if (fds[k].fd == c->listen_fd) {
            int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                console_add_client(c, fd);
        } else {
            message(c, fds[k].fd);
        }
    }
}

void console_broadcast(struct console *c, const char *buf, size_t len)
{
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++) {
        int fd = c->clients[i];
        for (size_t off = 0; fd >= 0 && off < len;) {
            size_t part = len - off < MESSAGE_BYTES ? len - off : MESSAGE_BYTES;
            ssize_t w = send(fd, buf + off, part, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                drop(c, fd); /* gone, or not reading for a second (SO_SNDTIMEO) */
                break;
            }
            off += (size_t)w;
        }
    }
}

void console_close_clients(struct console *c)
{
    for (int i = 0; i < CONSOLE_MAX_CLIENTS; i++)
        if (c->clients[i] >= 0) {
            close(c->clients[i]);
            c->clients[i] = -1;
        }
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
        c->listen_fd = -1;
    }
}

int console_send_fd(int sock, int fd)
{
    char byte = 'm', control[CMSG_SPACE(sizeof fd)];
    memset(control, 0, sizeof control);
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fd);
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int console_recv_fd(int sock)
{
    char byte, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n;
    while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}
