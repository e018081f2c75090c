/* Power and reset controls the guest can reach:
 *  - hardware-reduced ACPI (ACPI 6.4 §4.1): the FADT's SLEEP_CONTROL_REG, SLEEP_STATUS_REG
 *    and RESET_REG, at LAYOUT_ACPI_SLEEP_CTL / _STS / LAYOUT_ACPI_RESET (8-bit ports);
 *  (the i8042's "pulse reset line" command, which Linux's reboot=k uses, is in i8042.c).
 * Stop requests go to a struct power_sink; nothing here touches KVM.  Safe from any thread. */
#ifndef IGNITION_DEVICES_POWER_H
#define IGNITION_DEVICES_POWER_H

#include "core/bus.h"
#include "core/power.h"

#include <stdint.h>

struct devmgr;
struct power;

/* SLEEP_CONTROL_REG (ACPI 6.4 §4.8.3.7): SLP_TYP in bits 4:2, SLP_EN in bit 5. */
#define POWER_SLP_TYP_SHIFT 2
#define POWER_SLP_TYP_MASK  0x1c
#define POWER_SLP_EN	    0x20
/* The SLP_TYP value the DSDT's \_S5 package must carry. */
#define POWER_SLP_TYP_S5 5
/* SLEEP_STATUS_REG (ACPI 6.4 §4.8.3.8): WAK_STS, write 1 to clear. */
#define POWER_WAK_STS 0x80

/* The bus ops (exposed for tests). */
extern const struct dev_ops power_acpi_ops;

/* ACPI sleep/reset registers stopping the VM through `sink` (copied). */
int power_create(const struct power_sink *sink, struct power **out)
	__attribute__((warn_unused_result));
void power_destroy(struct power *p);
/* Reserve LAYOUT_PORT_ACPI_PM (3 ports) as "acpi-pm", create and attach. */
int power_acpi_add(struct devmgr *dm, const struct power_sink *sink, struct power **out)
	__attribute__((warn_unused_result));

/* The ACPI registers: what the boot path registers (power_acpi_add without a handle). */
int power_add(struct devmgr *dm, const struct power_sink *sink) __attribute__((warn_unused_result));

#endif
