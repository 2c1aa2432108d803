/* error.c - error strings and the version. */
#include <stdio.h>

#include "iok.h"

static const char *const messages[] = {
	[IOK_EINTR]        = "Interrupted",
	[IOK_ENOMEM]       = "Out of memory",
	[IOK_EINVAL]       = "Invalid argument",
	[IOK_EBUSY]        = "Resource busy",
	[IOK_ETIMEDOUT]    = "Timed out",
	[IOK_ECONNREFUSED] = "Connection refused",
	[IOK_ECLOSED]      = "Object closed",
	[IOK_EAGAIN]       = "Try again",
	[IOK_ENOTSUP]      = "Not supported",
	[IOK_EADDRINUSE]   = "Address in use",
	[IOK_ESTATE]       = "Incorrect state",
	[IOK_ENOENT]       = "Entry not found",
	[IOK_EPROTO]       = "Protocol error",
	[IOK_EUNREACHABLE] = "Destination unreachable",
	[IOK_EADDRINVAL]   = "Address invalid",
	[IOK_EPERM]        = "Permission denied",
	[IOK_EMSGSIZE]     = "Message too large",
	[IOK_ECONNABORTED] = "Connection aborted",
	[IOK_ECONNRESET]   = "Connection reset",
	[IOK_ECANCELED]    = "Operation canceled",
	[IOK_ENOFILES]     = "Out of files",
	[IOK_ENOSPC]       = "Out of space",
	[IOK_EEXIST]       = "Resource already exists",
	[IOK_EREADONLY]    = "Read only resource",
	[IOK_EWRITEONLY]   = "Write only resource",
	[IOK_ECRYPTO]      = "Cryptographic error",
	[IOK_EPEERAUTH]    = "Peer could not be authenticated",
	[IOK_ENOARG]       = "Option requires argument",
	[IOK_EAMBIGUOUS]   = "Ambiguous option",
	[IOK_EBADTYPE]     = "Incorrect type",
	[IOK_ECONNSHUT]    = "Connection shutdown",
};

const char *
iok_strerror(int err)
{
	static _Thread_local char unknown[48];
	if (err == 0) {
		return "Hunky dory";
	}
	if (err > 0 && (size_t) err < sizeof(messages) / sizeof(messages[0]) &&
	    messages[err] != NULL) {
		return messages[err];
	}
	if (err == IOK_EINTERNAL) {
		return "Internal error detected";
	}
	snprintf(unknown, sizeof(unknown), "Unknown error #%d", err);
	return unknown;
}

const char *
iok_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
	return STR(IOK_VERSION_MAJOR) "." STR(IOK_VERSION_MINOR) "." STR(IOK_VERSION_PATCH);
}
