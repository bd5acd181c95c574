"""Training command line: logs, checkpoints, exact resume, errors, fp16 export, DDP (gloo)."""

import csv
import os
import subprocess
import sys
import textwrap

from helpers import TINY_MODEL
import pytest
import torch
import yaml

from hand_object_pose_ros import train
from hand_object_pose_ros.config import ConfigError
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import load_model_from_checkpoint

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def tiny_config(tmp_path, **top):
    """Write a tiny training YAML and return its path."""
    data = {
        'model': dict(TINY_MODEL, object_ids=list(range(1, 22))),
        'data': {'dataset': 'synthetic', 'num_train_samples': 4, 'num_val_samples': 2,
                 'augment': True, 'num_workers': 0, 'synthetic': {'seed': 3}},
        'optim': {'learning_rate': 1e-3, 'lr_decay_every_epochs': 1, 'lr_decay_factor': 0.5},
        'epochs': 2,
        'batch_size': 2,
        'log_every_steps': 1,
        'checkpoint_every_minutes': 0.0,
        'device': 'cpu',
        'output_dir': str(tmp_path / 'run'),
    }
    data.update(top)
    path = tmp_path / 'train.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_main(args):
    """Run the command line in this process; returns the exit status."""
    return train.main(list(args) + ['--no-progress'])


def test_learning_rate_schedule():
    """Decay every 20 epochs up to epoch 100, constant afterwards (paper 4.1)."""
    cfg = train.OptimConfig(lr_decay_factor=0.5)
    factors = [train.learning_rate_factor(epoch, cfg) for epoch in (0, 19, 20, 45, 99, 100,
                                                                    199)]
    assert factors == [1.0, 1.0, 0.5, 0.25, 0.0625, 0.03125, 0.03125]


def test_train_writes_logs_checkpoint_and_export(tmp_path):
    """A 4-step run writes CSV, TensorBoard, a weights-only checkpoint and the fp16 export."""
    config = tiny_config(tmp_path)
    export = tmp_path / 'models' / 'tiny_fp16.pt'
    # With the optional corner loss on, so that its wiring (corners per class) runs too.
    assert run_main(['--config', config, '--export-fp16', str(export),
                     '--set', 'loss.pose_corners=1']) == 0
    run = tmp_path / 'run'
    with open(run / 'train_log.csv', newline='') as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row['step']) for row in rows] == [1, 2, 3, 4]
    for term in ('total', 'joints_3d', 'branch1', 'branch2', 'kl_image', 'beta_vae', 'lr',
                 'corners_from_image', 'corners_from_pose'):
        assert all(float(row[term]) == float(row[term]) for row in rows), term
    # The learning rate decays after the first epoch (decay every epoch in this config).
    assert float(rows[0]['lr']) == pytest.approx(1e-3)
    assert float(rows[-1]['lr']) == pytest.approx(5e-4)
    with open(run / 'validation.csv', newline='') as stream:
        validation = list(csv.DictReader(stream))
    assert len(validation) == 2
    assert float(validation[0]['val_root_relative_mje_mm']) > 0
    assert os.listdir(run / 'tensorboard')

    payload = torch.load(run / 'checkpoints' / 'last.pt', weights_only=True)
    extra = payload['extra']
    assert extra['train_config']['model']['input_size_px'] == 64
    assert extra['catalogue_ids'] == list(range(1, 22))
    state = extra['training_state']
    assert state['epoch'] == 2 and state['step'] == 4
    assert isinstance(state['rng_states'][0]['torch'], torch.Tensor)

    exported = torch.load(export, weights_only=True)
    assert exported['float16'] is True
    assert 'training_state' not in exported['extra']
    assert all(value.dtype != torch.float32 for value in exported['state_dict'].values())
    model = load_model_from_checkpoint(str(export))
    trained = load_model_from_checkpoint(str(run / 'checkpoints' / 'last.pt'))
    for (name, value), other in zip(model.state_dict().items(),
                                    trained.state_dict().values()):
        if value.is_floating_point():
            assert torch.allclose(value, other, atol=1e-2, rtol=1e-2), name


def test_resume_is_exact(tmp_path):
    """Stop after 1 step, resume to 4: the same weights as 4 uninterrupted steps."""
    straight = tmp_path / 'straight'
    straight.mkdir()
    config = tiny_config(straight)
    assert run_main(['--config', config]) == 0

    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    config = tiny_config(resumed)
    assert run_main(['--config', config, '--set', 'max_steps=1']) == 0
    last = resumed / 'run' / 'checkpoints' / 'last.pt'
    assert torch.load(last, weights_only=True)['extra']['training_state']['step'] == 1
    assert run_main(['--config', config, '--resume', str(last)]) == 0

    first = torch.load(straight / 'run' / 'checkpoints' / 'last.pt', weights_only=True)
    second = torch.load(last, weights_only=True)
    assert second['extra']['training_state']['step'] == 4
    for name, value in first['state_dict'].items():
        other = second['state_dict'][name]
        assert torch.allclose(value.double(), other.double(), atol=1e-6, rtol=0), name
    with open(resumed / 'run' / 'train_log.csv', newline='') as stream:
        assert [int(row['step']) for row in csv.DictReader(stream)] == [1, 2, 3, 4]


def test_unknown_config_key_is_named(tmp_path, capsys):
    """A misspelt key fails once, naming it (also inside data.synthetic)."""
    config = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match='optim.learnin_rate'):
        train.load_train_config(config, ['optim.learnin_rate=1e-3'])
    assert run_main(['--config', config, '--set', 'data.synthetic.sed=1']) == 2
    assert 'data.synthetic.sed' in capsys.readouterr().err


def test_missing_dataset_root_is_named(tmp_path, capsys):
    """A DexYCB root that does not exist: one error naming the path."""
    config = tiny_config(tmp_path)
    missing = str(tmp_path / 'no_dexycb_here')
    assert run_main(['--config', config, '--set', 'data.dataset=dexycb',
                     '--set', 'data.root=' + missing]) == 2
    assert missing in capsys.readouterr().err


def test_resume_from_other_architecture_names_tensors(tmp_path, capsys):
    """Resuming a checkpoint of another width lists the mismatching tensors."""
    config = tiny_config(tmp_path)
    assert run_main(['--config', config, '--set', 'max_steps=1']) == 0
    last = str(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    status = run_main(['--config', config, '--set', 'model.backbone.fpn_channels=8',
                       '--resume', last])
    assert status == 2
    error = capsys.readouterr().err
    assert 'shape mismatch' in error and 'backbone' in error


def test_init_weights_and_frozen_modules(tmp_path):
    """A direct-head run starts from a CVAE checkpoint's trunk and trains only its heads."""
    config = tiny_config(tmp_path)
    assert run_main(['--config', config, '--set', 'max_steps=1']) == 0
    source_path = str(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    source = torch.load(source_path, weights_only=True)['state_dict']
    cfg = train.load_train_config(config, [
        'model.object_head=direct', 'init_weights=' + source_path,
        'init_modules=[backbone, hand_head, classifier]',
        'frozen_modules=[backbone, hand_head]', 'max_steps=2', 'epochs=1',
        'output_dir=' + str(tmp_path / 'ablation')])
    model, reason = train.run_training(cfg, show_progress=False)
    assert reason == 'max_steps'
    state = model.state_dict()
    for name in ('backbone.stem.0.weight', 'hand_head.fc.0.weight',
                 'backbone.stem.1.running_mean'):
        # Frozen: the trunk is the checkpoint's, weights and BatchNorm statistics alike.
        assert torch.equal(state[name], source[name]), name
    # Not frozen: starts from the checkpoint's classifier, then trains.
    assert not torch.equal(state['classifier.0.weight'], source['classifier.0.weight'])
    assert model.cfg.object_head == 'direct'
    assert not any(name.startswith('object_head.') and name in source for name in state)


def test_export_only_writes_the_fp16_checkpoint_without_training(tmp_path):
    config = tiny_config(tmp_path)
    assert run_main(['--config', config, '--set', 'max_steps=1']) == 0
    last = tmp_path / 'run' / 'checkpoints' / 'last.pt'
    export = tmp_path / 'small.pt'
    assert run_main(['--resume', str(last), '--export-fp16', str(export),
                     '--export-only']) == 0
    full = torch.load(last, weights_only=True)['state_dict']
    small = torch.load(export, weights_only=True)['state_dict']
    name = 'hand_head.fc.0.weight'
    assert small[name].dtype == torch.float16
    assert torch.allclose(small[name].float(), full[name], atol=1e-3)
    assert run_main(['--resume', str(last), '--export-only']) == 2


def test_ctrl_c_saves_the_checkpoint_and_exits_cleanly(tmp_path):
    import signal
    import time

    config = tiny_config(tmp_path, epochs=1000)
    process = subprocess.Popen(
        [sys.executable, '-m', 'hand_object_pose_ros.train', '--config', config,
         '--no-progress', '--set', 'num_threads=1'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / 'run' / 'train_log.csv'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert 'training stopped: interrupted' in output
    payload = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt', weights_only=True)
    assert payload['extra']['training_state']['step'] >= 2


def test_init_modules_limits_what_is_copied(tmp_path):
    config = tiny_config(tmp_path)
    assert run_main(['--config', config, '--set', 'max_steps=1']) == 0
    source_path = str(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    source = torch.load(source_path, weights_only=True)['state_dict']
    torch.manual_seed(123)
    model = build_model(train.load_train_config(config).model)
    copied, left = train.initialise_from_checkpoint(model, source_path, ('backbone',))
    state = model.state_dict()
    assert copied == sum(name.startswith('backbone.') for name in state)
    assert all(torch.equal(state[name], source[name]) for name in state
               if name.startswith('backbone.'))
    assert 'hand_head.fc.0.weight' in left
    assert not torch.equal(state['hand_head.fc.0.weight'], source['hand_head.fc.0.weight'])


def test_frozen_module_names_and_foreign_init_are_errors(tmp_path, capsys):
    config = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match='frozen_modules: backbon '):
        train.load_train_config(config, ['frozen_modules=[backbon]'])
    with pytest.raises(ConfigError, match='init_modules: heads '):
        train.load_train_config(config, ['init_modules=[heads]'])
    other = tmp_path / 'other.pt'
    torch.save({'format': 'nothing'}, other)
    assert run_main(['--config', config, '--set', 'init_weights=' + str(other)]) == 2
    assert str(other) in capsys.readouterr().err


WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from hand_object_pose_ros import train
    cfg = train.load_train_config(sys.argv[1], ['max_steps=2', 'epochs=1'])
    model, reason = train.run_training(cfg, show_progress=False)
    torch.save(model.state_dict(), os.path.join(sys.argv[2], 'rank%s.pt' % os.environ['RANK']))
""")


def test_ddp_two_cpu_processes_end_identical(tmp_path):
    """Torchrun, 2 processes, gloo: different data per rank, identical weights at the end."""
    config = tiny_config(tmp_path, data={
        'dataset': 'synthetic', 'num_train_samples': 8, 'num_val_samples': 2,
        'augment': False, 'num_workers': 0, 'synthetic': {'seed': 5}})
    worker = tmp_path / 'worker.py'
    worker.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         str(worker), config, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    rank1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    cfg = train.load_train_config(config)
    torch.manual_seed(cfg.seed)
    initial = build_model(cfg.model).state_dict()
    changed = 0
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
        if value.is_floating_point() and not torch.equal(value, initial[name]):
            changed += 1
    assert changed > 10  # the two steps did train
    assert os.path.isfile(tmp_path / 'run' / 'checkpoints' / 'last.pt')


def test_time_budget_checkpoints_and_stops(tmp_path):
    """A spent --max-minutes budget stops after the current step with a resumable checkpoint."""
    config = tiny_config(tmp_path)
    model, reason = train.run_training(train.load_train_config(config), max_minutes=1e-6,
                                       show_progress=False)
    assert reason == 'time_budget'
    state = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt',
                       weights_only=True)['extra']['training_state']
    assert state['step'] == 1 and state['batch_in_epoch'] == 1 and state['epoch'] == 0


def test_epoch_samples_draws_a_fresh_subset_each_epoch():
    """data.epoch_samples ends an epoch early, on a different shuffle each epoch."""
    dataset = list(range(100))
    epochs = []
    for epoch in range(2):
        sampler = torch.utils.data.distributed.DistributedSampler(
            dataset, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
        sampler.set_epoch(epoch)
        epochs.append(list(train._SkipSampler(sampler, 0, 10)))
    assert [len(indices) for indices in epochs] == [10, 10]
    assert epochs[0] != epochs[1]
    resumed = list(train._SkipSampler(sampler, 4, 10))
    assert resumed == epochs[1][4:]
