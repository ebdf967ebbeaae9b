/* Entry code of the test guests. With -DGUEST_PVH the ELF carries the PVH note
 * (XEN_ELFNOTE_PHYS32_ENTRY → pvh_start32: 32-bit protected mode, paging off, ebx = start
 * info); without it the monitor uses the Linux 64-bit protocol at e_entry (start64: long mode,
 * identity-mapped, rsi = boot_params). Both record what they found and call guest_main(). */
#define MSR_EFER 0xc0000080

#ifdef GUEST_PVH
	.pushsection .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz: "Xen\0" */
	.long 4			/* descsz */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_start32
	.balign 4
	.popsection
#endif

	.section .text.entry, "ax"
	.globl _start
	.set _start, start64

	.code32
	.globl pvh_start32
pvh_start32:
	movl %ebx, boot_arg
	movl $0, boot_arg + 4
	movl $1, boot_protocol
	movl %cr0, %eax
	movl %eax, entry_cr0
	movw %cs, %ax
	movw %ax, entry_cs
	movl $stack_top, %esp
	pushfl
	popl %eax
	movl %eax, entry_flags

	/* Identity map 4 GiB with 2 MiB pages: 4 page directories under one PDPT. */
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax
	movl %eax, pd(, %ecx, 8)
	movl $0, pd + 4(, %ecx, 8)
	incl %ecx
	cmpl $2048, %ecx
	jb 1b
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $12, %eax
	addl $pd + 3, %eax
	movl %eax, pdpt(, %ecx, 8)
	incl %ecx
	cmpl $4, %ecx
	jb 2b
	movl $pdpt + 3, pml4
	movl $pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $MSR_EFER, %ecx
	rdmsr
	orl $0x100, %eax		/* LME */
	wrmsr
	lgdt gdt_desc
	movl %cr0, %eax
	orl $0x80000001, %eax		/* PG, PE */
	movl %eax, %cr0
	ljmp $0x08, $long_entry

	.code64
long_entry:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movq $stack_top, %rsp
	jmp common64

	.globl start64
start64:
	movq %rsi, boot_arg(%rip)
	movl $2, boot_protocol(%rip)
	movq %cr0, %rax
	movl %eax, entry_cr0(%rip)
	movw %cs, %ax
	movw %ax, entry_cs(%rip)
	leaq stack_top(%rip), %rsp
	pushfq
	popq %rax
	movl %eax, entry_flags(%rip)
	lgdt gdt_desc(%rip)
	pushq $0x08
	leaq 3f(%rip), %rax
	pushq %rax
	lretq
3:	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
common64:
	call guest_main
	movb $0x2f, %al			/* guest_main returned: a failure verdict */
	outb %al, $0xf4
4:	hlt
	jmp 4b

/* The AP trampoline, copied to AP_TRAMPOLINE (0x8000) by the SMP guest: real mode, counts
 * itself in at AP_COUNTER and halts. */
	.code16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lock incw 0x8800
5:	hlt
	jmp 5b
ap_tramp_end:

	.section .rodata
	.balign 8
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.data
	.globl boot_arg, boot_protocol, entry_cr0, entry_cs, entry_flags
	.balign 8
boot_arg:	.quad 0
boot_protocol:	.long 0
entry_cr0:	.long 0
entry_flags:	.long 0
entry_cs:	.word 0

	.bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
	.balign 16
	.skip 16384
stack_top:
	.section .note.GNU-stack, "", @progbits
