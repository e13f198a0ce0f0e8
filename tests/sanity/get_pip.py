# Stand-in for ansible-test's pip bootstrap script, whose download host is not reachable from the lab
# or CI: install the pip that ships with Python (ensurepip), then the packages ansible-test asks for.
import subprocess
import sys

# In a child process: ensurepip disables pip's configuration (index, certificates) in its own process.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
