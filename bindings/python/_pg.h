/*
 * _pg.h - the PostgreSQL half of the Python bindings (_pg.c, _pgrecord.c),
 * what iok.pg builds on.  Requests are built with iok_pg_query_new /
 * iok_pg_query_param / iok_pg_simple_query and replies read with
 * iok_pg_reader, all from include/iok.h; values are converted to and from
 * Python objects in C.
 */
#ifndef IKPY_PG_H
#define IKPY_PG_H

#include "iok.h"

/* ikpy_pg_init adds _pg.c's module functions and the Record type
 * (PgRecord) to the extension module.  0, or -1 with an exception. */
int ikpy_pg_init(PyObject *module);

/* ikpy_record_type_init makes the Record type (_pgrecord.c).  A new
 * reference, or NULL with an exception. */
PyObject *ikpy_record_type_init(void);

/* ikpy_record_new makes a record of n values (each set later with
 * ikpy_record_set, which steals the reference) sharing desc, a tuple
 * (names tuple, {name: index} dict).  NULL with an exception. */
PyObject *ikpy_record_new(PyObject *type, PyObject *desc, Py_ssize_t n);
void      ikpy_record_set(PyObject *rec, Py_ssize_t i, PyObject *v);

#endif /* IKPY_PG_H */
