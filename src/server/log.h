/* log.h - the server's log: one line per event on stderr, UTC timestamp first. A single
 * fprintf per line keeps lines from different threads whole. */
#ifndef TKR_SERVER_LOG_H
#define TKR_SERVER_LOG_H

void tkr_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
