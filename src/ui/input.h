/* Input for front ends: key names and combinations, text, pointer positions in screen pixels,
 * turned into virtio-input events for the keyboard and the tablet (US keyboard layout).  Shared
 * by the SDL window, the VNC server, the control socket and the MCP tools. */
#ifndef IGNITION_UI_INPUT_H
#define IGNITION_UI_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct display;
struct virtio_input;

/* Where events go.  Any pointer may be NULL (no such device: the calls return -ENODEV). */
struct ui_input {
	struct virtio_input *kbd;
	struct virtio_input *tablet;
	struct display *display; /* pointer coordinates are in its current mode */
};

/* Pointer buttons (ui_pointer's `buttons`). */
#define UI_BUTTON_LEFT	 1u
#define UI_BUTTON_RIGHT	 2u
#define UI_BUTTON_MIDDLE 4u

/* Press (down) or release one key by its Linux evdev code (KEY_*).  0 or -errno. */
int ui_key(const struct ui_input *in, uint16_t code, bool down) __attribute__((warn_unused_result));
/* Press and release a combination such as "ctrl+alt+t", "Return", "shift+Tab", "F1": every key
 * pressed in order, then released in reverse.  Names are case-insensitive (list in input.c).
 * 0, or -EINVAL with a one-line reason in err naming the unknown key. */
int ui_keys(const struct ui_input *in, const char *combo, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Type text: printable ASCII, '\n' (Enter) and '\t' (Tab), with shift where the US layout needs
 * it.  0, or -EINVAL naming the first character that cannot be typed (nothing sent). */
int ui_type(const struct ui_input *in, const char *text, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Move the pointer to (x, y) in screen pixels of the display's current mode (clamped) with
 * `buttons` (UI_BUTTON_*) held.  0 or -errno. */
int ui_pointer(const struct ui_input *in, uint32_t x, uint32_t y, uint32_t buttons)
	__attribute__((warn_unused_result));
/* Scroll the wheel by `clicks` (positive: away from the user).  0 or -errno. */
int ui_wheel(const struct ui_input *in, int clicks) __attribute__((warn_unused_result));

/* The evdev code of a key name ("a", "Return", "ctrl"...), or 0 if unknown. */
uint16_t ui_key_code(const char *name);
/* The evdev code for an X11 keysym (VNC's key events), and whether shift is implied; 0 if
 * unknown. */
uint16_t ui_keysym_code(uint32_t keysym, bool *shift);

#endif
