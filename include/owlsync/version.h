/* owlsync version: the one place the release number is written. */
#ifndef OWLSYNC_VERSION_H
#define OWLSYNC_VERSION_H

#define OWLSYNC_VERSION "0.1.0"

#endif
