"""Spark's Python daemon, with the face libraries imported before it forks the workers.

Spark starts one daemon per executor and forks a Python worker from it for each task slot
(`spark.python.daemon.module` names this module instead of `pyspark.daemon`). Each worker used
to import torch, torchvision (through facenet-pytorch's MTCNN) and dlib itself: about 6 s per
worker before its first photo, paid again on every executor. Imported here once, the workers
start with them in memory, shared copy-on-write. Only imports: no tensor is made before the
fork, so no thread pool exists to be copied half-way (each worker sets its own thread count).
"""
import dlib  # noqa: F401
import facenet_pytorch  # noqa: F401  (imports torch and torchvision)
from pyspark import daemon

if __name__ == "__main__":
    daemon.manager()
