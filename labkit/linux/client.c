/*
 * labkit-client: the `labkit` command, when a resident engine runs (labkit/daemon/server.py).
 *
 * bin/labkit execs it as `DIR/client PYTHON SCRIPT [ARG...]` when the server
 * has built it into its socket directory DIR: the directory it is run from is
 * the socket directory (bin/labkit found it by its rule, the one of
 * labkit.daemon.client.socket_dir; no third copy of that rule lives here). It
 * does what bin/labkit's Python part does, without starting an interpreter:
 * it sends the arguments, the environment, the working directory, the umask
 * and its stdin, stdout and stderr (SCM_RIGHTS, unix(7)) to the server, and
 * exits with the command's code. Whenever the server did not run the command (none listening, a
 * directory someone else could enter, "again"), it execs `PYTHON -S -E SCRIPT
 * ARG...` with _LABKIT_SOCKET_DIR=DIR, which runs it another way. The wire format
 * is labkit/daemon/server.py's.
 *
 * When the command relays a container's terminal (`run -it`, `attach`,
 * `exec -it`), the worker says "tty": the worker is not in this terminal's
 * session, so SIGWINCH comes here, and each one is passed on as a byte on the
 * socket (labkit/linux/console.py reads the new size from the terminal it
 * holds). At the end this process puts its terminal's modes back as they were,
 * whatever became of the worker that set them raw.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

static char **fallback_argv;

static const char *socket_dir;

/* Nothing ran: let the Python part of bin/labkit run the command (it starts a server, or runs it in-process). */
static void __attribute__((noreturn)) fallback(void)
{
    if (socket_dir)
        setenv("_LABKIT_SOCKET_DIR", socket_dir, 1);
    execvp(fallback_argv[0], fallback_argv);
    fprintf(stderr, "labkit: cannot run %s: %s.\n", fallback_argv[0], strerror(errno));
    exit(127);
}

static int server_fd = -1;

static void window_changed(int sig)
{
    (void)sig;
    ssize_t n = write(server_fd, "w", 1); /* async-signal-safe (signal-safety(7)) */
    (void)n;
}

/* The directory this program was run from, DIR of `DIR/client`: its socket directory. */
static const char *own_dir(const char *self, char *buf, size_t cap)
{
    const char *slash = strrchr(self, '/');
    if (!slash)
        return ".";
    if (slash == self)
        return "/";
    if ((size_t)(slash - self) >= cap)
        return NULL;
    memcpy(buf, self, (size_t)(slash - self));
    buf[slash - self] = 0;
    return buf;
}

struct buffer {
    char *data;
    size_t len, cap;
};

static void add(struct buffer *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            fallback();
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void field(struct buffer *b, const char *s, int first)
{
    if (!first)
        add(b, "", 1); /* the NUL between fields */
    add(b, s, strlen(s));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: labkit-client PYTHON SCRIPT [ARG...]\n");
        return 2;
    }
    char **args = argv + 3;
    int nargs = argc - 3;
    fallback_argv = calloc((size_t)nargs + 5, sizeof *fallback_argv);
    if (!fallback_argv)
        return 127;
    fallback_argv[0] = argv[1];
    fallback_argv[1] = "-S";
    fallback_argv[2] = "-E";
    fallback_argv[3] = argv[2];
    for (int i = 0; i < nargs; i++)
        fallback_argv[4 + i] = args[i];

    char dirbuf[4096], path[4200], cwd[8192], text[64];
    const char *dir = own_dir(argv[0], dirbuf, sizeof dirbuf);
    socket_dir = dir;
    unsetenv("_LABKIT_SOCKET_DIR"); /* bin/labkit's word to its Python part, never part of the command */
    const char *no_server = getenv("LABKIT_NO_SERVER");
    if ((no_server && *no_server) || (nargs > 0 && !strcmp(args[0], "server")))
        fallback();
    struct stat st;
    /* Only a directory of ours that nobody else may enter can hold a server we trust. */
    if (!dir || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        fallback();
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(path, sizeof path, "%s/engine.sock", dir) >= sizeof addr.sun_path)
        fallback();
    strcpy(addr.sun_path, path);
    if (!getcwd(cwd, sizeof cwd))
        fallback();

    struct buffer body = {0};
    mode_t mask = umask(0);
    umask(mask);
    field(&body, "1", 1);
    field(&body, cwd, 0);
    snprintf(text, sizeof text, "%o", (unsigned)mask);
    field(&body, text, 0);
    snprintf(text, sizeof text, "%d", nargs);
    field(&body, text, 0);
    for (int i = 0; i < nargs; i++)
        field(&body, args[i], 0);
    for (char **e = environ; *e; e++)
        field(&body, *e, 0);
    char head[16];
    snprintf(head, sizeof head, "%010zu", body.len);

    signal(SIGPIPE, SIG_IGN); /* a server that went away is an error to handle, not a death */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        fallback();
    int fds[3] = {0, 1, 2};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov[2] = {{head, 10}, {body.data, body.len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    ssize_t sent = sendmsg(fd, &msg, 0);
    if (sent < 0)
        fallback();
    size_t total = 10 + body.len, done = (size_t)sent;
    while (done < total) { /* the rest, without descriptors */
        size_t off = done < 10 ? 0 : done - 10;
        ssize_t n = done < 10 ? send(fd, head + done, 10 - done, 0) : send(fd, body.data + off, body.len - off, 0);
        if (n < 0)
            fallback();
        done += (size_t)n;
    }

    char answer[512];
    size_t got = 0;
    struct termios modes;
    int terminal = isatty(0) && tcgetattr(0, &modes) == 0, relaying = 0;
    server_fd = fd;
    for (;;) { /* "started\n", maybe "tty\n", then "exit N\n" */
        answer[got] = '\0';
        char *end = strstr(answer, "exit ");
        if (end && strchr(end, '\n'))
            break;
        if (!relaying && strstr(answer, "tty\n")) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = window_changed; /* no SA_RESTART: read(2) below sees EINTR and goes on */
            sigaction(SIGWINCH, &sa, NULL);
            relaying = 1;
        }
        ssize_t n = read(fd, answer + got, sizeof answer - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    answer[got] = '\0';
    if (relaying) {
        signal(SIGWINCH, SIG_DFL);
        if (terminal)
            tcsetattr(0, TCSADRAIN, &modes);
    }
    if (!strstr(answer, "started"))
        fallback(); /* nothing ran */
    char *code = strstr(answer, "exit ");
    if (!code) {
        fprintf(stderr, "labkit: the engine server stopped before the command ended; see 'labkit ps -a'.\n");
        return 1;
    }
    return atoi(code + 5);
}
