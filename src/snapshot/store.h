/* `ignition snapshot list|info|rm` (docs/snapshots.md, "Commands"). */
#ifndef IGNITION_SNAPSHOT_STORE_H
#define IGNITION_SNAPSHOT_STORE_H

/* argv[0] is "snapshot"; returns the process exit status (0, 1 on an error, 2 on bad usage). */
int snapshot_store_main(int argc, char **argv);

#endif
