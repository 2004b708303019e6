"""Write the IPython profile used when notebooks execute (IPYTHONDIR=.ipython): it silences the
kernel's start-up TCP warning at log level instead of hiding stderr."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
profile = ROOT / ".ipython" / "profile_default"
profile.mkdir(parents=True, exist_ok=True)
(profile / "ipython_kernel_config.py").write_text("c.IPKernelApp.log_level = 'ERROR'\n")
print(f"IPython profile written to {profile}")
