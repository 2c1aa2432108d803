/*
 * pg_pipeline.c - the ceiling for bench/python/pg-run: libpq's pipeline
 * mode on ONE connection, written in C, keeping DEPTH queries in flight.
 *
 *   pg_pipeline CONNINFO SQL SECONDS [DEPTH] [NKEYS]
 *
 * SQL has one int parameter ($1), cycling through 1..NKEYS.  Prints the
 * queries completed per second.  Every result is checked (PGRES_TUPLES_OK
 * with one row); any failure exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
send_one(PGconn *c, long i, long nkeys)
{
	char        buf[24];
	const char *vals[1] = { buf };
	snprintf(buf, sizeof buf, "%ld", i % nkeys + 1);
	/* Unnamed statement re-parsed each time would favour nobody: prepare. */
	return PQsendQueryPrepared(c, "q", 1, vals, NULL, NULL, 0);
}

int
main(int argc, char **argv)
{
	PGconn   *c;
	PGresult *r;
	double    secs, t0, end;
	long      depth = 100, nkeys = 10000, sent = 0, done = 0, inflight = 0;
	if (argc < 4) {
		fprintf(stderr, "usage: pg_pipeline CONNINFO SQL SECONDS [DEPTH] [NKEYS]\n");
		return 2;
	}
	secs = atof(argv[3]);
	if (argc > 4) {
		depth = atol(argv[4]);
	}
	if (argc > 5) {
		nkeys = atol(argv[5]);
	}
	c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_pipeline: %s", PQerrorMessage(c));
		return 1;
	}
	r = PQprepare(c, "q", argv[2], 1, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "pg_pipeline: prepare: %s", PQerrorMessage(c));
		return 1;
	}
	PQclear(r);
	if (!PQenterPipelineMode(c)) {
		fprintf(stderr, "pg_pipeline: no pipeline mode: %s", PQerrorMessage(c));
		return 1;
	}
	t0  = now();
	end = t0 + secs;
	for (;;) {
		int running = now() < end;
		while (running && inflight < depth) {
			if (!send_one(c, sent++, nkeys) || !PQpipelineSync(c)) {
				fprintf(stderr, "pg_pipeline: send: %s", PQerrorMessage(c));
				return 1;
			}
			inflight++;
		}
		if (!running && inflight == 0) {
			break;
		}
		if (PQflush(c) < 0) {
			fprintf(stderr, "pg_pipeline: flush: %s", PQerrorMessage(c));
			return 1;
		}
		/* One query's results, then its sync point. */
		while ((r = PQgetResult(c)) != NULL) {
			ExecStatusType st = PQresultStatus(r);
			if (st == PGRES_PIPELINE_SYNC) {
				PQclear(r);
				inflight--;
				done++;
				break;
			}
			if (st != PGRES_TUPLES_OK || PQntuples(r) != 1) {
				fprintf(stderr, "pg_pipeline: result %s: %s", PQresStatus(st),
				    PQerrorMessage(c));
				return 1;
			}
			PQclear(r);
		}
	}
	printf("%.1f\n", done / (now() - t0));
	PQexitPipelineMode(c);
	PQfinish(c);
	return 0;
}
