/* serial.c — a minimal 8250/16550A UART at 0x3f8 (IRQ 4), enough for Linux's 8250 driver and
 * its console: THR/RBR, IER, IIR/FCR, LCR, MCR (with loopback), LSR, MSR, SCR, DLL/DLM.
 * Output goes to vm->console_fd when set (--console); it is always scanned for
 * "Kernel panic" so that the reset that follows a panic is reported as one. No input. */
#include <string.h>

#include "vmm.h"

#define SERIAL_BASE 0x3f8
#define SERIAL_IRQ 4
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

static const char panic_marker[] = "Kernel panic";

struct serial {
  struct vm *vm;
  pthread_mutex_t lock;
  uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
  bool thri_pending;
  size_t panic_match; /* bytes of panic_marker matched so far */
  _Atomic bool saw_panic;
};

static void serial_update_irq(struct serial *s)
{
  if ((s->ier & IER_THRI) && s->thri_pending)
    vm_irq_trigger(s->vm, SERIAL_IRQ);
}

static void serial_output(struct serial *s, uint8_t ch)
{
  if (ch == (uint8_t) panic_marker[s->panic_match]) {
    if (++s->panic_match == sizeof(panic_marker) - 1) {
      atomic_store(&s->saw_panic, true);
      s->panic_match = 0;
    }
  } else {
    s->panic_match = ch == (uint8_t) panic_marker[0];
  }
  if (s->vm->console_fd >= 0)
    write_all(s->vm->console_fd, &ch, 1);
}

static uint8_t serial_msr(const struct serial *s)
{
  if (!(s->mcr & MCR_LOOP))
    return 0xb0; /* DCD, DSR, CTS */
  /* Loopback: OUT2→DCD, OUT1→RI, RTS→CTS, DTR→DSR (Linux's autoconfig checks this). */
  return (uint8_t) (((s->mcr & 0x08) << 4) | ((s->mcr & 0x04) << 4) | ((s->mcr & 0x02) << 3) |
                    ((s->mcr & 0x01) << 5));
}

static void serial_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
  struct serial *s = opaque;
  if (len != 1) {
    if (!is_write)
      memset(data, 0xff, len);
    return;
  }
  pthread_mutex_lock(&s->lock);
  bool dlab = s->lcr & LCR_DLAB;
  if (is_write) {
    uint8_t v = data[0];
    switch (off) {
    case 0:
      if (dlab) {
        s->dll = v;
      } else {
        if (!(s->mcr & MCR_LOOP))
          serial_output(s, v);
        s->thri_pending = true; /* transmitted at once: the holding register is empty again */
        serial_update_irq(s);
      }
      break;
    case 1:
      if (dlab) {
        s->dlm = v;
      } else {
        uint8_t was = s->ier;
        s->ier = v & 0x0f;
        if (!(was & IER_THRI) && (s->ier & IER_THRI))
          s->thri_pending = true;
        serial_update_irq(s);
      }
      break;
    case 2:
      s->fcr = v;
      break;
    case 3:
      s->lcr = v;
      break;
    case 4:
      s->mcr = v & 0x1f;
      break;
    case 7:
      s->scr = v;
      break;
    default: /* LSR and MSR are read-only */
      break;
    }
  } else {
    uint8_t v = 0;
    switch (off) {
    case 0:
      v = dlab ? s->dll : 0; /* no input */
      break;
    case 1:
      v = dlab ? s->dlm : s->ier;
      break;
    case 2:
      if ((s->ier & IER_THRI) && s->thri_pending) {
        v = IIR_THRI;
        s->thri_pending = false; /* reading IIR acknowledges THRE */
      } else {
        v = IIR_NONE;
      }
      v |= (s->fcr & 0x01) ? 0xc0 : 0; /* FIFOs enabled: a 16550A */
      break;
    case 3:
      v = s->lcr;
      break;
    case 4:
      v = s->mcr;
      break;
    case 5:
      v = LSR_THRE | LSR_TEMT;
      break;
    case 6:
      v = serial_msr(s);
      break;
    case 7:
      v = s->scr;
      break;
    default:
      break;
    }
    data[0] = v;
  }
  pthread_mutex_unlock(&s->lock);
}

int serial_create(struct vm *vm, struct isola_error **err)
{
  struct serial *s = xzalloc(sizeof(*s));
  s->vm = vm;
  pthread_mutex_init(&s->lock, NULL);
  int r = bus_register(&vm->pio, SERIAL_BASE, 8, serial_access, s);
  if (r < 0) {
    serial_destroy(s);
    return isola_fail(err, -r, "cannot register the serial port");
  }
  vm->serial = s;
  return 0;
}

void serial_destroy(struct serial *s)
{
  if (!s)
    return;
  pthread_mutex_destroy(&s->lock);
  free(s);
}

bool serial_saw_panic(const struct serial *s)
{
  return atomic_load(&s->saw_panic);
}
