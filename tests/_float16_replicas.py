"""Run by test_precision.py in a fresh process (two logical CPU devices must be set before TensorFlow
initialises): float16 loss scaling on two replicas where only replica 1's gradients overflow.  Both
replicas must skip the update, so the mirrored weights stay equal and unchanged and the scale halves once."""

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from gan_anime.models import dtype_policy  # noqa: E402
from gan_anime.training.step import apply_gradients, scaled_loss  # noqa: E402

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    with dtype_policy("mixed_float16"):
        model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1, dtype="float32")])
    model.build((None, 3))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
    opt.build(model.trainable_variables)


@tf.function
def step(bad_replica):
    def replica(bad_replica):
        ctx = tf.distribute.get_replica_context()
        factor = tf.where(tf.equal(ctx.replica_id_in_sync_group, bad_replica), float("inf"), 1.0)
        with tf.GradientTape() as tape:
            target = scaled_loss(opt, tf.reduce_mean(model(tf.ones([2, 3]))) * factor)
        return apply_gradients(opt, tape.gradient(target, model.trainable_variables), model.trainable_variables)
    norms = strategy.run(replica, args=(bad_replica,))
    return strategy.experimental_local_results(norms)


def weights():
    # keras.Variable.value: the tf.distribute MirroredVariable behind it, one copy per replica.
    copies = [strategy.experimental_local_results(w.value) for w in model.trainable_variables]
    assert all(len(c) == 2 for c in copies), [len(c) for c in copies]
    return [[v.numpy() for v in c] for c in copies]


before = weights()
norms = step(tf.constant(1))
after = weights()
assert [float(n) for n in norms] == [0.0, 0.0], norms
assert float(opt.dynamic_scale.numpy()) == 2.0 ** 14, opt.dynamic_scale.numpy()
assert int(opt.iterations.numpy()) == 0
for b, a in zip(before, after):
    assert all(np.array_equal(b[0], x) for x in b + a)
norms = step(tf.constant(-1))   # no replica overflows: both update, identically
assert all(float(n) > 0 for n in norms) and int(opt.iterations.numpy()) == 1
for b, a in zip(before, weights()):
    assert not np.array_equal(b[0], a[0]) and np.array_equal(a[0], a[1])
print("skipped on both replicas")
