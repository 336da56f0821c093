/* console.h: a container's terminal (-t) and the relay of its pseudo-terminal master (see console.c). */
#ifndef LABKIT_CONSOLE_H
#define LABKIT_CONSOLE_H

#include <poll.h>
#include <stddef.h>

#define CONSOLE_MAX_CLIENTS 16

struct console {
    int master;                         /* the pty master, -1 until it arrives */
    int listen_fd;                      /* the attach socket (SOCK_SEQPACKET), or -1 */
    int clients[CONSOLE_MAX_CLIENTS];   /* attached callers; -1 where none */
};

void console_init(struct console *c);
/* Take a connected SOCK_SEQPACKET socket as an attached caller; -1 if there is no room. */
int console_add_client(struct console *c, int fd);
/* Listen on `name` (relative to the directory `dir`, mode 0600); -1 with errno on failure. */
int console_listen(struct console *c, const char *dir, const char *name);
/* The pollfds of the listening socket and every client, appended at fds; returns how many. */
int console_pollfds(const struct console *c, struct pollfd *fds);
/* Handle what poll(2) said about those `n` entries: new callers, input, window sizes, callers gone. */
void console_handle(struct console *c, const struct pollfd *fds, int n);
/* Send output to every attached caller; one that cannot take it within a second is let go. */
void console_broadcast(struct console *c, const char *buf, size_t len);
/* Close every client and the listening socket. */
void console_close_clients(struct console *c);

/* Pass a descriptor over a unix socket (SCM_RIGHTS, unix(7)); 0 or -1. */
int console_send_fd(int sock, int fd);
/* Receive one; -1 at end of file (the sender died first). */
int console_recv_fd(int sock);

#endif
