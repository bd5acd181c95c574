"""
Untrusted files: checkpoints, MANO pickles and paths from parameters never run code.

A checkpoint or a MANO pickle that would run a command when unpickled (``os.system`` through
``__reduce__``, creating a marker file) is refused with a clear error, by the library and by the
node (configure fails, the process exits 1), and the marker never appears. A checkpoint whose
tensors do not fit its config names them. Paths with shell syntax are only ever paths. The
package never uses a shell (grep).
"""

import os
import pickle
import re

from helpers import REPO_ROOT
from helpers import start_node_piped
from helpers import write_tiny_model_config
import pytest
import torch

from hand_object_pose_ros.inference import Predictor
from hand_object_pose_ros.inference import PredictorError
from hand_object_pose_ros.modeling.checkpoint import CheckpointError
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint
from hand_object_pose_ros.modeling.checkpoint import save_checkpoint


class RunsCommand:
    """Pickles to a call of os.system that would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, ('touch %s' % self.marker,))


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Working folder with the tiny config."""
    path = tmp_path_factory.mktemp('untrusted')
    write_tiny_model_config(path)
    return path


@pytest.fixture(scope='module')
def good_checkpoint(folder):
    """Save a valid tiny checkpoint."""
    model = Predictor.from_config(str(folder / 'tiny_model.yaml'), device='cpu', seed=0).model
    return save_checkpoint(str(folder / 'good.pt'), model)


def _malicious_checkpoints(folder, marker):
    """Write the same exploit as a torch zip checkpoint, a legacy torch file and a plain pickle."""
    payload = {'format': 'hand_object_pose_ros.checkpoint', 'format_version': 1,
               'state_dict': {}, 'extra': {'x': RunsCommand(marker)}}
    paths = {}
    paths['zip'] = folder / 'evil_zip.pt'
    torch.save(payload, paths['zip'])
    paths['legacy'] = folder / 'evil_legacy.pt'
    torch.save(payload, paths['legacy'], _use_new_zipfile_serialization=False)
    paths['pickle'] = folder / 'evil.pkl'
    paths['pickle'].write_bytes(pickle.dumps(payload, protocol=2))
    return paths


@pytest.mark.parametrize('kind', ['zip', 'legacy', 'pickle'])
def test_checkpoint_that_runs_a_command_is_refused(folder, kind):
    """Predictor and load_model_from_checkpoint refuse it (weights_only); nothing ran."""
    marker = folder / ('ran_%s' % kind)
    path = _malicious_checkpoints(folder, marker)[kind]
    with pytest.raises(CheckpointError, match='not a readable hand_object_pose_ros checkpoint'):
        load_model_from_checkpoint(str(path))
    with pytest.raises(PredictorError) as error:
        Predictor.from_checkpoint(str(path), device='cpu')
    message = str(error.value)
    assert str(path) in message
    assert re.search('weights_only|Unsupported global|posix.system|os.system', message), message
    assert not marker.exists(), 'the pickle ran its command'


def test_mismatched_tensors_are_named_by_the_library(folder, good_checkpoint):
    """Renamed, dropped and re-shaped tensors are all listed in one error."""
    path = _mismatched_checkpoint(folder, good_checkpoint)
    with pytest.raises(PredictorError) as error:
        Predictor.from_checkpoint(path, device='cpu')
    message = str(error.value)
    for name in ('renamed.weight', 'missing in checkpoint', 'shape mismatch'):
        assert name in message, message


def _mismatched_checkpoint(folder, good_checkpoint):
    """Copy a checkpoint with one tensor renamed, one dropped, one re-shaped."""
    payload = torch.load(good_checkpoint, map_location='cpu', weights_only=True)
    state = payload['state_dict']
    names = sorted(key for key, value in state.items() if value.dim() >= 2)
    state['renamed.weight'] = state.pop(names[0])
    del state[names[1]]
    state[names[2]] = torch.zeros(tuple(s + 1 for s in state[names[2]].shape))
    path = str(folder / 'mismatched.pt')
    torch.save(payload, path)
    return path


def _node(folder, *parameters):
    """Start the node (autostart) with parameters; return the Popen."""
    return start_node_piped(folder, ('device:=cpu', 'bbox_msg_type:=roi') + parameters)


@pytest.mark.ros
def test_node_refuses_untrusted_files_and_names_the_parameter(folder, good_checkpoint):
    """
    Fail configure (exit 1) with a clear message, nothing run, for every untrusted input.

    The inputs: a MANO folder whose pickle would run a command, a checkpoint that would, a
    checkpoint whose tensors do not fit (named), and a checkpoint path holding shell syntax.
    """
    mano_dir = folder / 'evil_mano'
    mano_dir.mkdir()
    mano_marker = folder / 'mano_ran'
    (mano_dir / 'MANO_RIGHT.pkl').write_bytes(pickle.dumps(
        {'v_template': RunsCommand(mano_marker)}, protocol=2))
    checkpoint_marker = folder / 'checkpoint_ran'
    evil_checkpoint = _malicious_checkpoints(folder, checkpoint_marker)['zip']
    shell_marker = folder / 'shell_ran'
    shell_path = '%s/$(touch %s)`touch %s`;touch %s.pt' % (folder, shell_marker, shell_marker,
                                                           shell_marker)
    config = 'model_config:=' + str(folder / 'tiny_model.yaml')
    cases = {
        'mano': (_node(folder, config, 'mano_model_dir:=' + str(mano_dir)),
                 ["'mano_model_dir'", 'refusing to load global', 'system']),
        'checkpoint': (_node(folder, 'checkpoint:=' + str(evil_checkpoint)),
                       ["'checkpoint'", str(evil_checkpoint)]),
        'mismatch': (_node(folder, 'checkpoint:=' + _mismatched_checkpoint(
            folder, good_checkpoint)), ["'checkpoint'", 'renamed.weight', 'shape mismatch']),
        'shell': (_node(folder, 'checkpoint:=' + shell_path), ["'checkpoint'", 'not found']),
    }
    for name, (process, expected) in cases.items():
        output, _ = process.communicate(timeout=240)
        text = output.decode(errors='replace')
        assert process.returncode == 1, (name, text)
        assert 'configure failed' in text, (name, text)
        for fragment in expected:
            assert fragment in text, (name, fragment, text)
    for marker in (mano_marker, checkpoint_marker, shell_marker):
        assert not marker.exists(), marker


SHELL_PATTERNS = {
    'shell=True': re.compile(r'shell\s*=\s*True'),
    'os.system': re.compile(r'\bos\.system\s*\('),
    'os.popen': re.compile(r'\bos\.popen\s*\('),
    'subprocess.getoutput': re.compile(r'subprocess\.(getoutput|getstatusoutput)\s*\('),
    'os.exec*/spawn*': re.compile(r'\bos\.(exec|spawn)[a-z]*\s*\('),
    'eval/exec': re.compile(r'(?<![\w.])(eval|exec)\s*\('),
    'pickle.load without the restricted unpickler': re.compile(r'\bpickle\.loads?\s*\('),
    'yaml.load without a SafeLoader': re.compile(r'\byaml\.(unsafe_)?load\s*\('),
    'numpy allow_pickle=True': re.compile(r'allow_pickle\s*=\s*True'),
}


def _package_sources():
    """Yield (relative path, text) of every Python file of the package, launch/ and scripts/."""
    for top in ('hand_object_pose_ros', 'launch', 'scripts'):
        for root, _, files in os.walk(os.path.join(REPO_ROOT, top)):
            for name in files:
                if name.endswith('.py'):
                    path = os.path.join(root, name)
                    with open(path, encoding='utf-8') as stream:
                        yield os.path.relpath(path, REPO_ROOT), stream.read()


def _safe_yaml_load(name, code, text):
    """Tell whether it is ``yaml.load(..., Loader=X)`` where X is (an alias of) a SafeLoader."""
    if not name.startswith('yaml.load'):
        return False
    loader = re.search(r'Loader\s*=\s*([\w.]+)', code)
    if loader is None:
        return False
    alias = loader.group(1)
    return 'SafeLoader' in alias or bool(
        re.search(r'^%s\s*=.*SafeLoader' % re.escape(alias), text, re.MULTILINE))


def test_package_never_uses_a_shell_or_unsafe_loaders():
    """No shell=True, os.system, os.popen, eval/exec, raw pickle.load, yaml.load."""
    found = []
    count = 0
    for path, text in _package_sources():
        count += 1
        for line_number, line in enumerate(text.splitlines(), 1):
            code = line.split('#', 1)[0]
            for name, pattern in SHELL_PATTERNS.items():
                if pattern.search(code) and not _safe_yaml_load(name, code, text):
                    found.append('%s:%d %s: %s' % (path, line_number, name, line.strip()))
    assert count > 20
    assert not found, '\n'.join(found)


def test_every_torch_load_is_weights_only():
    """Each torch.load call in the package passes weights_only=True."""
    calls = []
    for path, text in _package_sources():
        for match in re.finditer(r'torch\.load\s*\(', text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {'(': 1, ')': -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start():end + 1]
            calls.append((path, call))
            assert re.search(r'weights_only\s*=\s*True', call), (path, call)
    assert calls, 'no torch.load found: the check looks at the wrong files'
