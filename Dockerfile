FROM 127.0.0.1:5000/lab/busybox
COPY cap /cap
