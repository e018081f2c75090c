/* A minimal i8042 keyboard controller with a PS/2 keyboard behind it (ports 0x60/0x64, IRQ 1),
 * enough for Linux's i8042 and atkbd drivers to find it (ACPI PNP0303 node), talk to the
 * keyboard, and receive the one key combination the host sends: Ctrl+Alt+Del (Firecracker's
 * SendCtrlAltDel action).  No auxiliary (mouse) port: the DSDT describes none, so Linux does
 * not probe one.  It also keeps the classic reset line: command 0xFE (and any even command in
 * 0xF0..0xFE) stops the VM with VM_STOP_REBOOT, as `reboot=k` expects.
 *
 * What the guest sees (8042 command set, IBM PS/2 technical reference):
 *  - status (read 0x64): OBF when a byte waits at 0x60, IBF always 0 (commands complete at
 *    once), SYS, CMD/DATA (last write was to 0x64), KEYLOCK (1 = not inhibited);
 *  - controller commands (write 0x64): 0x20 read / 0x60 write the command byte (CTR), 0xAA
 *    self test (0x55), 0xAB keyboard interface test (0x00), 0xA9 auxiliary interface test
 *    (0x01: no auxiliary device), 0xAD/0xAE disable/enable the keyboard, 0xA7/0xA8 set/clear
 *    the auxiliary disable bit, 0xD0/0xD1 read/write the output port, 0xD2 echo a byte as
 *    keyboard data, 0xD3/0xD4 (auxiliary loop/send) take their byte and drop it, 0xF0-0xFF
 *    pulse output lines; any other command is ignored (no answer);
 *  - keyboard commands (write 0x60): 0xFF reset (ACK + 0xAA), 0xF2 identify (ACK 0xAB 0x83),
 *    0xF4/0xF5/0xF6 enable/disable/defaults, 0xED LEDs and 0xF3 typematic (ACK per byte),
 *    0xF0 scan code set (only set 2; 0 reads it), 0xEE echo, 0xFE resend, 0xF7-0xFD ACK; any
 *    other byte is answered 0xFE (resend), as a real keyboard does.
 * Keys are set-2 scan codes; with the CTR's translate bit set the controller hands out their
 * set-1 translation, as real controllers do.  Every byte presented at 0x60 raises IRQ 1 once
 * (edge) if the CTR enables the keyboard interrupt.  Queues are bounded: a guest that never
 * reads loses the newest bytes, the VMM never grows.  Safe from any thread (one lock). */
#ifndef IGNITION_DEVICES_I8042_H
#define IGNITION_DEVICES_I8042_H

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/irq.h"
#include "core/power.h"

#include <stdint.h>

struct devmgr;
struct i8042;

#define I8042_DATA_PORT LAYOUT_PORT_I8042
#define I8042_CMD_PORT	(LAYOUT_PORT_I8042 + 4)
#define I8042_IRQ	LAYOUT_GSI_I8042 /* ISA IRQ 1: edge-triggered, active high */

/* Status register bits (read 0x64). */
#define I8042_STR_OBF	  0x01
#define I8042_STR_IBF	  0x02
#define I8042_STR_SYS	  0x04
#define I8042_STR_CMD	  0x08
#define I8042_STR_KEYLOCK 0x10 /* 1: keyboard not inhibited */
/* Command byte (CTR) bits. */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYS	 0x04
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE	 0x40
/* The command byte at power-on: keyboard interrupt on, POST passed, no translation (Linux then
 * drives the keyboard in scan code set 2 directly). */
#define I8042_CTR_DEFAULT (I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_AUXDIS)

#define I8042_CMD_RESET 0xfe /* pulse output bit 0: CPU reset */
#define I8042_KBD_ACK	0xfa
#define I8042_KBD_NAK	0xfe
#define I8042_KBD_BAT	0xaa /* self test passed */
#define I8042_QUEUE	16   /* the keyboard's buffer, bytes */

/* The bus ops: data port 0x60 and command/status port 0x64 (exposed for tests). */
extern const struct dev_ops i8042_data_ops;
extern const struct dev_ops i8042_cmd_ops;

/* A controller that raises `irq` (NULL: none) and stops the VM through `sink` (copied; NULL:
 * reset requests are dropped). */
int i8042_create(struct irq_line *irq, const struct power_sink *sink, struct i8042 **out)
	__attribute__((warn_unused_result));
void i8042_destroy(struct i8042 *k);
/* Reserve ports 0x60 ("i8042", with IRQ 1) and 0x64 ("i8042-cmd") and attach the controller
 * to both (the 0x60 slot owns it; 0x61-0x63 stay free for the in-kernel PIT's port B).  If
 * adding 0x64 fails after 0x60 succeeded, the controller stays owned by the manager. */
int i8042_add(struct devmgr *dm, const struct power_sink *sink, struct i8042 **out)
	__attribute__((warn_unused_result));

/* Press and release Ctrl+Alt+Del: LeftCtrl, LeftAlt, Delete made, then broken in reverse
 * order, into the keyboard's buffer, and IRQ 1 if the guest enabled it.  All or nothing:
 * -ENOSPC if the buffer lacks room for the whole sequence, -EAGAIN if the guest has turned
 * the keyboard's scanning off (a real keyboard then sends nothing either). */
int i8042_send_ctrl_alt_del(struct i8042 *k) __attribute__((warn_unused_result));

#endif
