/* all.c - the built-in patterns.  A new pattern adds itself here. */
#include "pattern.h"

extern const ik_pattern ik_pattern_pair0, ik_pattern_pair1, ik_pattern_push0, ik_pattern_pull0;
extern const ik_pattern ik_pattern_pub0, ik_pattern_sub0, ik_pattern_bus0;
extern const ik_pattern ik_pattern_req0, ik_pattern_rep0, ik_pattern_surveyor0,
    ik_pattern_respondent0;
extern const ik_pattern ik_pattern_db;

void ik_patterns_builtin(void);

void
ik_patterns_builtin(void)
{
	ik_pattern_register(&ik_pattern_pair0);
	ik_pattern_register(&ik_pattern_pair1);
	ik_pattern_register(&ik_pattern_push0);
	ik_pattern_register(&ik_pattern_pull0);
	ik_pattern_register(&ik_pattern_pub0);
	ik_pattern_register(&ik_pattern_sub0);
	ik_pattern_register(&ik_pattern_bus0);
	ik_pattern_register(&ik_pattern_req0);
	ik_pattern_register(&ik_pattern_rep0);
	ik_pattern_register(&ik_pattern_surveyor0);
	ik_pattern_register(&ik_pattern_respondent0);
	ik_pattern_alias("pair", "pair1"); /* nng_pair_open is pair v1 */
	ik_pattern_register(&ik_pattern_db);
	ik_pattern_alias("db", "pipelined-db");
}
