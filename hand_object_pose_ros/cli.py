"""What the package's command lines share: logging to stderr and one-line error reports."""

import logging
import sys

LOG_FORMAT = '%(levelname)s %(name)s: %(message)s'
# Exit status of a command that stopped on an expected error (argparse's usage-error status).
ERROR_EXIT_STATUS = 2


def run_command(program, job, expected_errors):
    """
    Log INFO and above to stderr, run ``job`` and report an expected error in one line.

    :param program: command name, prefixed to the error line (``'<program>: error: ...'``).
    :param job: callable taking no argument; its return value is ignored.
    :param expected_errors: exception class or tuple of classes reported without a traceback.
    :return: process exit status: 0 when ``job`` returned, 2 after an expected error.
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        job()
    except expected_errors as error:
        print('%s: error: %s' % (program, error), file=sys.stderr)
        return ERROR_EXIT_STATUS
    return 0
