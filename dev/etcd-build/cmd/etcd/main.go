// Command etcd builds the etcd server from the Go module proxy for the local
// Kubernetes API server (Debian's etcd 3.4 is too old for kube-apiserver 1.35+).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
