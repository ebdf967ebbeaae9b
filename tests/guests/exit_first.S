/* The timing guest: its PVH entry writes the debug-exit port at once, so the monitor's first
 * exit marks the guest's first instruction (ISOLA_VMM_TIMING first_exit_ns). Exit status 33. */
	.pushsection .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long 18
	.asciz "Xen"
	.balign 4
	.long _start
	.balign 4
	.popsection

	.section .text.entry, "ax"
	.code32
	.globl _start
_start:
	movb $0x10, %al
	outb %al, $0xf4
1:	hlt
	jmp 1b
	.section .note.GNU-stack, "", @progbits
