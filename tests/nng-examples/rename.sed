# The whole port of an nng program to iok: the prefixes, and nng's headers
# (one per protocol) to iok's single header.  Nothing else may be needed.
s|#include <nng/nng.h>|#include <iok.h>|
\|^#include <nng/protocol/|d
s/nng_/iok_/g
s/NNG_/IOK_/g
