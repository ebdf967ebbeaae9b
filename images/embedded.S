/* The images carried inside the `isola` binary, as bytes in .rodata: the busybox oci-archive
 * that images/recipes/busybox.sh builds at build time. The archive's path comes from the build
 * (-DISOLA_BUSYBOX_ARCHIVE="..."), see images/meson.build. Read them through embedded.h. */

        .section .rodata.isola_embedded, "a", @progbits
        .balign 64
        .globl isola_embedded_busybox_start
        .hidden isola_embedded_busybox_start
        .type isola_embedded_busybox_start, @object
isola_embedded_busybox_start:
        .incbin ISOLA_BUSYBOX_ARCHIVE
        .globl isola_embedded_busybox_end
        .hidden isola_embedded_busybox_end
        .type isola_embedded_busybox_end, @object
isola_embedded_busybox_end:
        .byte 0 /* the end symbol points into this object, not past the section */
        .size isola_embedded_busybox_start, isola_embedded_busybox_end - isola_embedded_busybox_start
        .size isola_embedded_busybox_end, 1

/* No executable stack for whoever links this. */
        .section .note.GNU-stack, "", @progbits
