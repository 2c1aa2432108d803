/*
 * _appstats.h - application counters, timers and markers for Python
 * (_appstats.c).
 */
#ifndef IKPY_APPSTATS_H
#define IKPY_APPSTATS_H

#include <Python.h>

/* ikpy_appstats_init adds Counter, Timer and marker() to the extension
 * module.  0, or -1 with an exception. */
int ikpy_appstats_init(PyObject *module);

#endif
