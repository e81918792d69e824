"""The mark of the SSH settings: it changes with whatever a connection authenticated with, and only then."""

from __future__ import annotations

import os

from driver.execution import sshsettings


def _touch(path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a later edit, whatever the clock


def test_the_mark_holds_while_nothing_changes(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"h1 ansible_user=a ansible_ssh_common_args='-o UserKnownHostsFile={known}'\n")
    first = sshsettings.mark(str(inventory))
    assert sshsettings.mark(str(inventory)) == first
    assert len(first) == 8


def test_known_hosts_named_by_the_inventory_user_key_and_group_vars_change_it(tmp_path, monkeypatch):
    known, key = tmp_path / "known_hosts", tmp_path / "id_ed25519"
    known.write_text("old\n")
    key.write_text("key\n")
    inventory = tmp_path / "hosts.ini"
    line = "h1 ansible_user={user} ansible_ssh_private_key_file=" + str(key)
    line += f" ansible_ssh_common_args='-o UserKnownHostsFile={known}'\n"
    inventory.write_text(line.format(user="a"))
    marks = [sshsettings.mark(str(inventory))]
    _touch(known, "new\n")  # a changed known_hosts
    marks.append(sshsettings.mark(str(inventory)))
    _touch(key, "other key\n")  # another key in the same file
    marks.append(sshsettings.mark(str(inventory)))
    _touch(inventory, line.format(user="b"))  # another user
    marks.append(sshsettings.mark(str(inventory)))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("ansible_user: c\n")
    marks.append(sshsettings.mark(str(inventory)))
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-o StrictHostKeyChecking=no")
    marks.append(sshsettings.mark(str(inventory)))
    marks.append(sshsettings.mark(str(inventory), accept_new_host_keys=True))
    assert len(set(marks)) == len(marks), marks


def test_a_host_list_and_this_machine(tmp_path):
    assert sshsettings.mark("h1,h2,") != sshsettings.mark("h1,h3,")
    assert sshsettings.mark(None) == sshsettings.mark(None)
