/* signals: SIGTERM/SIGINT set a stop flag that the consumer loop and servers check. */
#ifndef BW_SIGNALS_H
#define BW_SIGNALS_H

#include <signal.h>

/* Installs the handlers (once) and returns the process-wide stop flag (borrowed). */
volatile sig_atomic_t *bw_signals_install(void);

#endif
