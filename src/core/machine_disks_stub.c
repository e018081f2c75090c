/* TEMPORARY (not for commit): until blk-undo merges. */
#include "core/machine.h"
#include "util/log.h"
int machine_disks_checkpoint(struct machine *m)
{
	(void)m;
	log_warn("disks are not checkpointed (stub)");
	return 0;
}
int machine_disks_rollback(struct machine *m)
{
	(void)m;
	return 0;
}
