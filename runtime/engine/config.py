"""The process-wide wasmtime Engine and its configuration.

Everything in the engine config that changes compiled code goes into the precompiled cache's key
(CONFIG_TAG), so an entry compiled under another config is never loaded.
"""

from __future__ import annotations

import hashlib
import logging

from wasmtime import Config, Engine

from runtime.engine import instance_pool, pagemap_scan

log = logging.getLogger("lepton.runtime")

# Everything in the engine config that changes compiled code goes into the cache key.
ENGINE_SETTINGS = {"epoch_interruption": True, "cranelift_opt_level": "speed"}
CONFIG_TAG = hashlib.sha256(repr(sorted(ENGINE_SETTINGS.items())).encode()).hexdigest()[:12]


def _base_config() -> Config:
    config = Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    return config


def make_engine(*, concurrency: int) -> Engine:
    """The engine, with the pooling allocator sized for `concurrency` guest threads when the
    machine allows it (see runtime.engine.instance_pool), else wasmtime's on-demand allocator."""
    wanted = instance_pool.requested()
    if wanted is False:
        return Engine(_base_config())
    pagemap = pagemap_scan.availability()
    limits = instance_pool.PoolLimits.for_concurrency(
        concurrency, keep_resident_bytes=instance_pool.keep_resident(pagemap_scan=pagemap.enabled),
        pagemap_scan=pagemap.enabled)
    if wanted is None and not instance_pool.fits(limits):
        log.warning(
            "pooling instance allocator unavailable: cannot reserve %d GiB of address space "
            "(ulimit -v?); allocating instances on demand",
            limits.address_space // instance_pool.GiB,
        )
        return Engine(_base_config())
    config = _base_config()
    instance_pool.configure(config, limits)
    if pagemap.enabled:
        log.info("instance memory: freed slots reset with PAGEMAP_SCAN, %d MiB kept resident per slot",
                 limits.keep_resident_bytes // instance_pool.MiB)
    else:
        log.info("instance memory: PAGEMAP_SCAN reset off (%s); %d MiB kept resident per slot",
                 pagemap.reason, limits.keep_resident_bytes // instance_pool.MiB)
    return Engine(config)
