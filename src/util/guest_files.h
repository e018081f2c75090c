/* Where this build's default guest lives, and its small text files (guest/out/cmdline-*). */
#ifndef IGNITION_UTIL_GUEST_FILES_H
#define IGNITION_UTIL_GUEST_FILES_H

#include <stddef.h>

/* guest/out/ of this build: $IGNITION_GUEST_DIR, else <binary dir>/../guest/out. */
void guest_out_dir(char *buf, size_t size);
/* Read a small text file (a guest's command line) into buf as one line: newlines become
 * spaces, trailing ones and spaces are trimmed.  0 or -errno. */
int read_text_line(const char *path, char *buf, size_t size);

#endif
